-- Customer 360 at the end of the partition day: one row per customer, joining the profile and home store,
-- store and online orders, returns, the devices the identity map ties to the customer, and Segment activity.
--
-- Inputs: the trusted current state of `customers`, `stores`, `orders` and `returns` at the partition,
-- `identities` (the identity map after the partition day) and `events` (the typed Segment events of the
-- trusted days in the 30 days up to the partition; days not landed simply contribute nothing).
-- Bound by the caller: {{ "{{ as_of }}" }} ('YYYY-MM-DD'), {{ "{{ since_30d }}" }} and {{ "{{ as_of_end }}" }}
-- ('YYYY-MM-DD HH:MM:SS'). Common subset of Spark SQL 3.5 and DuckDB.
WITH order_totals AS (
    SELECT
        customer_id,
        SUM(CASE WHEN channel = 'store' THEN 1 ELSE 0 END) AS store_orders,
        SUM(CASE WHEN channel <> 'store' THEN 1 ELSE 0 END) AS online_orders,
        SUM(CASE WHEN channel = 'store' THEN total ELSE 0 END) AS store_revenue,
        SUM(CASE WHEN channel <> 'store' THEN total ELSE 0 END) AS online_revenue,
        MIN(order_ts) AS first_order_ts,
        MAX(order_ts) AS last_order_ts,
        MAX(CASE WHEN channel = 'store' THEN order_ts END) AS last_store_order_ts,
        MAX(CASE WHEN channel <> 'store' THEN order_ts END) AS last_online_order_ts
    FROM orders
    WHERE order_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
),
returned AS (
    SELECT o.customer_id, COUNT(*) AS returns_lifetime, SUM(r.refund_amount) AS refunds_lifetime
    FROM returns AS r
    INNER JOIN orders AS o ON o.order_id = r.order_id
    WHERE r.return_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY o.customer_id
),
devices AS (
    SELECT customer_id, COUNT(*) AS known_devices
    FROM identities
    GROUP BY customer_id
),
activity AS (
    SELECT customer_id, COUNT(*) AS events_30d, MAX(event_ts) AS last_seen_ts
    FROM events
    WHERE customer_id IS NOT NULL
        AND event_ts >= CAST('{{ since_30d }}' AS TIMESTAMP) AND event_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    CAST('{{ as_of }}' AS DATE) AS as_of,
    c.first_name,
    c.last_name,
    c.email,
    c.phone,
    c.email_opt_in,
    c.sms_opt_in,
    c.loyalty_tier,
    c.signup_date,
    c.home_store_id,
    s.name AS home_store_name,
    s.region AS home_region,
    COALESCE(o.store_orders, 0) AS store_orders,
    COALESCE(o.online_orders, 0) AS online_orders,
    CAST(COALESCE(o.store_revenue, 0) AS DECIMAL(14, 2)) AS store_revenue,
    CAST(COALESCE(o.online_revenue, 0) AS DECIMAL(14, 2)) AS online_revenue,
    CAST(COALESCE(o.store_revenue, 0) + COALESCE(o.online_revenue, 0) AS DECIMAL(14, 2)) AS lifetime_revenue,
    o.first_order_ts,
    o.last_order_ts,
    o.last_store_order_ts,
    o.last_online_order_ts,
    COALESCE(r.returns_lifetime, 0) AS returns_lifetime,
    CAST(COALESCE(r.refunds_lifetime, 0) AS DECIMAL(14, 2)) AS refunds_lifetime,
    COALESCE(d.known_devices, 0) AS known_devices,
    COALESCE(a.events_30d, 0) AS events_30d,
    a.last_seen_ts
FROM customers AS c
LEFT JOIN stores AS s ON s.store_id = c.home_store_id
LEFT JOIN order_totals AS o ON o.customer_id = c.customer_id
LEFT JOIN returned AS r ON r.customer_id = c.customer_id
LEFT JOIN devices AS d ON d.customer_id = c.customer_id
LEFT JOIN activity AS a ON a.customer_id = c.customer_id
ORDER BY c.customer_id
