-- Amazon Personalize users: every customer of the trusted state with the loyalty tier and, per model, the
-- decile of the day's score (NULL for a customer not scored today). USER_ID: the retailer's external_id, else the
-- customer id.
SELECT
    COALESCE(c.external_id, CAST(c.customer_id AS STRING)) AS USER_ID,
    c.loyalty_tier AS LOYALTY_TIER
{%- for model in models %},
    CAST(MAX(CASE WHEN s.model = '{{ model }}' THEN s.decile END) AS STRING) AS {{ model | upper }}_DECILE
{%- endfor %}
FROM customers AS c
LEFT JOIN scores AS s ON s.customer_id = c.customer_id
GROUP BY c.customer_id, c.external_id, c.loyalty_tier
