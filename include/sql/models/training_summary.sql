-- What a model's training splits hold, checked before training (crosschannel.stages.models.datasets): per split
-- (views `train`, `validation`, `test`: the feature snapshots of its as-of days), the rows whose label window is
-- complete, their positives, the labels that are not 0 or 1 (with the least and greatest), and per feature the
-- infinite values (a SageMaker CSV would carry them as `inf`).
{%- for split in splits %}
SELECT
    '{{ split }}' AS split,
    COUNT(*) AS row_count,
    CAST(COALESCE(SUM(CASE WHEN {{ label }} = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS positives,
    CAST(COALESCE(SUM(CASE WHEN {{ label }} NOT IN (0, 1) THEN 1 ELSE 0 END), 0) AS BIGINT) AS bad_labels,
    MIN(CASE WHEN {{ label }} NOT IN (0, 1) THEN CAST({{ label }} AS DOUBLE) END) AS bad_label_min,
    MAX(CASE WHEN {{ label }} NOT IN (0, 1) THEN CAST({{ label }} AS DOUBLE) END) AS bad_label_max
{%- for feature in features %},
    CAST(COALESCE(SUM(CASE WHEN ABS(CAST({{ feature }} AS DOUBLE)) = CAST('Infinity' AS DOUBLE) THEN 1 ELSE 0 END),
        0) AS BIGINT) AS infinite_{{ loop.index0 }}
{%- endfor %}
FROM {{ split }}
WHERE {{ label }} IS NOT NULL
{%- if not loop.last %}
UNION ALL
{%- endif %}
{%- endfor %}
