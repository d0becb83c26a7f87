-- In-market by category: at least 3 product views in one category in the last 14 days and no purchase in that
-- category in those days. `detail` is the category (the most viewed one; ties by name).
-- needs: events, products
WITH views AS (
    SELECT customer_id, category, COUNT(*) AS views
    FROM events
    WHERE customer_id IS NOT NULL AND event_name = 'Product Viewed' AND category IS NOT NULL
        AND event_ts >= CAST('{{ since_14d }}' AS TIMESTAMP) AND event_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id, category
    HAVING COUNT(*) >= 3
),
bought AS (
    SELECT DISTINCT o.customer_id, p.category
    FROM orders AS o
    INNER JOIN order_lines AS l ON l.order_id = o.order_id
    INNER JOIN products AS p ON p.product_id = l.product_id
    WHERE o.order_ts >= CAST('{{ since_14d }}' AS TIMESTAMP) AND o.order_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
),
ranked AS (
    SELECT v.customer_id, v.category,
        ROW_NUMBER() OVER (PARTITION BY v.customer_id ORDER BY v.views DESC, v.category) AS position
    FROM views AS v
    LEFT JOIN bought AS b ON b.customer_id = v.customer_id AND b.category = v.category
    WHERE b.customer_id IS NULL
)
SELECT customer_id, category AS detail
FROM ranked
WHERE position = 1
