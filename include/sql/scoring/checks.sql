-- What the score gate (crosschannel.stages.scoring.scores) judges, computed where the scores are: the transform's
-- output (view `scored`) against the day's features (view `customers`) and the previous day's published scores
-- (view `previous`, empty on a model's first day). One row per finding, `kind`:
--   rows          n: the scored lines; value: their mean probability
--   missing       a customer of the day's features not scored: the 5 lowest ids, n: how many in all
--   extra         a scored id not in the day's features: as missing
--   duplicated    an id scored more than once: as missing, n: the lines beyond the first
--   out_of_range  a probability outside [0, 1] or missing: as missing, value: the probability
--   current       the scores in [0, 1] at a thousandth (value: FLOOR(p * 1000 + 0.5), n: how many): the PSI's input
--   previous      the previous day's scores, likewise
--   version       text: a model version of the previous day's scores
WITH
scored_ids AS (
    SELECT customer_id, COUNT(*) AS times FROM scored GROUP BY customer_id
),
wanted AS (
    SELECT DISTINCT customer_id FROM customers
),
missing AS (
    SELECT w.customer_id FROM wanted AS w LEFT JOIN scored_ids AS s ON s.customer_id = w.customer_id
    WHERE s.customer_id IS NULL
),
extra AS (
    SELECT s.customer_id FROM scored_ids AS s LEFT JOIN wanted AS w ON w.customer_id = s.customer_id
    WHERE w.customer_id IS NULL
),
out_of_range AS (
    SELECT customer_id, probability FROM scored
    WHERE probability IS NULL OR NOT (probability >= 0 AND probability <= 1)
),
findings AS (
    SELECT 'missing' AS kind, customer_id, CAST(NULL AS DOUBLE) AS value,
           ROW_NUMBER() OVER (ORDER BY customer_id NULLS LAST) AS k, COUNT(*) OVER () AS n FROM missing
    UNION ALL
    SELECT 'extra', customer_id, CAST(NULL AS DOUBLE), ROW_NUMBER() OVER (ORDER BY customer_id NULLS LAST),
           COUNT(*) OVER () FROM extra
    UNION ALL
    SELECT 'duplicated', customer_id, CAST(NULL AS DOUBLE), ROW_NUMBER() OVER (ORDER BY customer_id NULLS LAST),
           SUM(times - 1) OVER () FROM scored_ids WHERE times > 1
    UNION ALL
    SELECT 'out_of_range', customer_id, probability,
           ROW_NUMBER() OVER (ORDER BY customer_id NULLS LAST, probability NULLS LAST), COUNT(*) OVER ()
    FROM out_of_range
)
SELECT kind, customer_id, value, CAST(n AS BIGINT) AS n, CAST(NULL AS STRING) AS text FROM findings WHERE k <= 5
UNION ALL
SELECT 'rows', CAST(NULL AS BIGINT), AVG(probability), COUNT(*), CAST(NULL AS STRING) FROM scored
UNION ALL
SELECT 'current', CAST(NULL AS BIGINT), CAST(FLOOR(probability * 1000 + 0.5) AS DOUBLE), COUNT(*),
       CAST(NULL AS STRING)
FROM scored WHERE probability >= 0 AND probability <= 1 GROUP BY CAST(FLOOR(probability * 1000 + 0.5) AS DOUBLE)
UNION ALL
SELECT 'previous', CAST(NULL AS BIGINT), CAST(FLOOR(probability * 1000 + 0.5) AS DOUBLE), COUNT(*),
       CAST(NULL AS STRING)
FROM previous WHERE probability >= 0 AND probability <= 1
GROUP BY CAST(FLOOR(probability * 1000 + 0.5) AS DOUBLE)
UNION ALL
SELECT DISTINCT 'version', CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS BIGINT), model_version
FROM previous
