-- A model's scores of the day as they are published once the score gate passes: the transform's output (view
-- `scored`: customer_id, probability, reason_1..3) with each customer's decile, 1..10 by probability (10 = the
-- highest). Equal probabilities are ranked by a stable hash of model and customer (md5 of '<model>:<id>', the
-- hash crosschannel.stages.models.metrics.stable_hash reads), so a tie (every one-time buyer alike, a baseline
-- champion's coarse scores) is cut at random but the same way every day, never by id. rank * 10 / rows is one
-- IEEE division on both engines, and its FLOOR exact while rows stay under 2^50.
SELECT
    s.customer_id,
    s.probability,
    s.reason_1,
    s.reason_2,
    s.reason_3,
    CAST(FLOOR(CAST((ROW_NUMBER() OVER (ORDER BY s.probability NULLS LAST, md5(concat('{{ model }}:',
                                                                           CAST(s.customer_id AS STRING))),
                                        s.customer_id) - 1) * 10 AS DOUBLE)
               / CAST(COUNT(*) OVER () AS DOUBLE)) AS BIGINT) + 1 AS decile,
    '{{ model }}' AS model,
    '{{ version }}' AS model_version,
    '{{ partition }}' AS partition
FROM scored AS s
