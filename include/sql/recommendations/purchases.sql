-- Purchases: every order line of the trusted orders (the history up to the day), with its order's customer and time.
SELECT o.customer_id, l.product_id, o.order_ts AS ts, CAST(l.quantity AS BIGINT) AS quantity
FROM orders AS o
INNER JOIN order_lines AS l ON l.order_id = o.order_id
WHERE o.customer_id IS NOT NULL AND l.product_id IS NOT NULL
