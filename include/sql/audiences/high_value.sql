-- High value: the top RFM tier. Each of recency, frequency and monetary value over 365 days is scored 1-5 by
-- quintile among the customers who ordered in that year (ties share a score); the tier is a total of 13 or more.
WITH active AS (
    SELECT customer_id, recency_days, frequency_365d, monetary_365d
    FROM features
    WHERE frequency_365d > 0
),
scored AS (
    SELECT
        customer_id,
        LEAST(5, 1 + CAST(FLOOR(PERCENT_RANK() OVER (ORDER BY recency_days DESC) * 5) AS BIGINT)) AS r,
        LEAST(5, 1 + CAST(FLOOR(PERCENT_RANK() OVER (ORDER BY frequency_365d) * 5) AS BIGINT)) AS f,
        LEAST(5, 1 + CAST(FLOOR(PERCENT_RANK() OVER (ORDER BY monetary_365d) * 5) AS BIGINT)) AS m
    FROM active
)
SELECT customer_id, CONCAT('RFM ', CAST(r AS STRING), '-', CAST(f AS STRING), '-', CAST(m AS STRING)) AS detail
FROM scored
WHERE r + f + m >= 13
