-- One split of a model's training data as its SageMaker channel reads it: the label first, then each feature
-- as DOUBLE (a null, or a NaN, is an empty CSV field: XGBoost's missing value), from the feature snapshots of the
-- split's as-of days (view `snapshots`), the rows whose label window is complete. Rows as the snapshots are
-- ordered: by as-of day, then customer (the job writes them in this order). Columns are named through the view,
-- so one the snapshots lack is named as such (not taken for the alias of the same name).
SELECT
    CAST(s.{{ label }} AS DOUBLE) AS {{ label }}
{%- for feature in features %},
    NULLIF(CAST(s.{{ feature }} AS DOUBLE), CAST('NaN' AS DOUBLE)) AS {{ feature }}
{%- endfor %}
FROM snapshots AS s
WHERE s.{{ label }} IS NOT NULL
ORDER BY s.as_of, s.customer_id
