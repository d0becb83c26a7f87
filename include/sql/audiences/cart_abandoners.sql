-- Cart abandoners (retargeting): added to a cart in the last 7 days and placed no order, in any channel, since
-- their last cart add.
-- needs: events
WITH last_cart AS (
    SELECT customer_id, MAX(event_ts) AS last_cart_ts
    FROM events
    WHERE customer_id IS NOT NULL AND event_name = 'Product Added'
        AND event_ts >= CAST('{{ since_7d }}' AS TIMESTAMP) AND event_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
),
last_order AS (
    SELECT customer_id, MAX(order_ts) AS last_order_ts
    FROM orders
    WHERE order_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
)
SELECT c.customer_id, 'cart add, no order since' AS detail
FROM last_cart AS c
LEFT JOIN last_order AS o ON o.customer_id = c.customer_id
WHERE o.last_order_ts IS NULL OR o.last_order_ts < c.last_cart_ts
