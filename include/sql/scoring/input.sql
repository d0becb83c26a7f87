-- A model's batch transform input: the customer id, then the champion's features as DOUBLE (a null, or a NaN, is
-- an empty CSV field: XGBoost's missing value), from the day's published features (view `features`), one line per
-- customer in id order. The transform's InputFilter hands the model every field but the id.
SELECT
    f.customer_id
{%- for feature in features %},
    NULLIF(CAST(f.{{ feature }} AS DOUBLE), CAST('NaN' AS DOUBLE)) AS {{ feature }}
{%- endfor %}
FROM features AS f
ORDER BY f.customer_id
