-- Customer features as of the end of the as-of day, and the labels whose future window is complete.
--
-- Inputs: the trusted current state of `customers`, `orders`, `order_lines`, `products` and `returns` at the
-- partition (data_end), and `events`: the typed Segment events of the trusted days in the 30 days up to the
-- as-of day (event features count only the days that were landed; a fresh install needs 30 days of
-- retail_ingest behind it for them to be complete).
-- Only orders, returns and events before the end of the as-of day feed the features, so past as-of days can
-- be computed from today's state (training sets); the labels look at the orders after it:
--   repurchase_30d = 1 when the customer orders in the 30 days after the as-of day (NULL until complete)
--   churn_90d      = 1 when the customer does not order in the 90 days after it (NULL until complete)
-- Purchase timing: the customer is observed from their signup or the first day of the order data, whichever is
-- later (observed_days); the gaps between their purchase days give their own rhythm, against which the recency is
-- read (recency_ratio, expected_orders_since_last); the last 90 days' share of the year shows the trend.
-- Times are bound by the caller ({{ "{{ as_of_end }}" }} and friends are 'YYYY-MM-DD HH:MM:SS' strings), so the
-- SQL needs no date arithmetic beyond a day count, written in the common subset of Spark SQL 3.5 and DuckDB.
WITH past AS (
    SELECT order_id, customer_id, order_ts, total, discount, channel
    FROM orders
    WHERE order_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
),
per_customer AS (
    SELECT
        customer_id,
        MAX(order_ts) AS last_order_ts,
        MIN(order_ts) AS first_order_ts,
        COUNT(*) AS orders_lifetime,
{%- for days in windows %}
        SUM(CASE WHEN order_ts >= CAST('{{ since[days] }}' AS TIMESTAMP) THEN 1 ELSE 0 END) AS frequency_{{ days }}d,
        SUM(CASE WHEN order_ts >= CAST('{{ since[days] }}' AS TIMESTAMP) THEN total ELSE 0 END) AS monetary_{{ days }}d,
{%- endfor %}
{%- for channel in channels %}
        SUM(CASE WHEN order_ts >= CAST('{{ since[365] }}' AS TIMESTAMP) AND channel = '{{ channel }}' THEN 1 ELSE 0 END)
            AS {{ channel }}_orders_365d,
{%- endfor %}
        SUM(CASE WHEN order_ts >= CAST('{{ since[365] }}' AS TIMESTAMP) THEN discount ELSE 0 END) AS discount_365d
    FROM past
    GROUP BY customer_id
),
-- Purchase days and the gaps between them (days), for the customer's own rhythm.
purchase_days AS (
    SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS day
    FROM past
),
gaps AS (
    SELECT customer_id, day, LAG(day) OVER (PARTITION BY customer_id ORDER BY day) AS previous_day,
        ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY day DESC) AS latest
    FROM purchase_days
),
intervals AS (
    SELECT customer_id, latest,
        EXTRACT(DAY FROM (CAST(day AS TIMESTAMP) - CAST(previous_day AS TIMESTAMP))) AS gap
    FROM gaps
),
rhythm AS (
    SELECT
        customer_id,
        COUNT(*) AS order_days_lifetime,
        AVG(gap) AS interval_mean_days,
        -- from exact integer sums: STDDEV_SAMP's floating-point running state depends on the order a parallel
        -- engine combines its parts in, so two runs could differ in the last digit
        CASE WHEN COUNT(gap) > 1 THEN SQRT(CAST(COUNT(gap) * SUM(gap * gap) - SUM(gap) * SUM(gap) AS DOUBLE)
            / CAST(COUNT(gap) * (COUNT(gap) - 1) AS DOUBLE)) END AS interval_std_days,
        MAX(gap) AS interval_max_days,
        MAX(CASE WHEN latest = 1 THEN gap END) AS interval_last_days
    FROM intervals
    GROUP BY customer_id
),
data_start AS (
    SELECT CAST(MIN(order_ts) AS DATE) AS first_day
    FROM past
),
returned AS (
    SELECT o.customer_id, COUNT(*) AS returns_90d, SUM(r.refund_amount) AS refunds_90d
    FROM returns AS r
    INNER JOIN orders AS o ON o.order_id = r.order_id
    WHERE r.return_ts >= CAST('{{ since[90] }}' AS TIMESTAMP) AND r.return_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY o.customer_id
),
activity AS (
    SELECT
        customer_id,
        SUM(CASE WHEN event_name = 'Product Viewed' THEN 1 ELSE 0 END) AS product_views_30d,
        SUM(CASE WHEN event_name = 'Products Searched' THEN 1 ELSE 0 END) AS searches_30d,
        SUM(CASE WHEN event_name = 'Product Added to Wishlist' THEN 1 ELSE 0 END) AS wishlist_adds_30d,
        SUM(CASE WHEN event_name = 'Product Added' THEN 1 ELSE 0 END) AS cart_adds_30d,
        MAX(event_ts) AS last_visit_ts
    FROM events
    WHERE customer_id IS NOT NULL
        AND event_ts >= CAST('{{ since[30] }}' AS TIMESTAMP) AND event_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
),
-- A cart abandoned: a day on which the customer added to a cart and placed no order in any channel.
cart_days AS (
    SELECT DISTINCT customer_id, CAST(event_ts AS DATE) AS day
    FROM events
    WHERE customer_id IS NOT NULL AND event_name = 'Product Added'
        AND event_ts >= CAST('{{ since[30] }}' AS TIMESTAMP) AND event_ts < CAST('{{ as_of_end }}' AS TIMESTAMP)
),
order_days AS (
    SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS day
    FROM past
    WHERE order_ts >= CAST('{{ since[30] }}' AS TIMESTAMP)
),
abandoned AS (
    SELECT c.customer_id, COUNT(*) AS cart_abandons_30d
    FROM cart_days AS c
    LEFT JOIN order_days AS o ON o.customer_id = c.customer_id AND o.day = c.day
    WHERE o.customer_id IS NULL
    GROUP BY c.customer_id
),
-- Category affinity: the category of most units bought in the last 365 days (ties: by name) and its share.
category_units AS (
    SELECT o.customer_id, p.category, SUM(l.quantity) AS units
    FROM order_lines AS l
    INNER JOIN past AS o ON o.order_id = l.order_id
    INNER JOIN products AS p ON p.product_id = l.product_id
    WHERE o.order_ts >= CAST('{{ since[365] }}' AS TIMESTAMP)
    GROUP BY o.customer_id, p.category
),
category_ranked AS (
    SELECT
        customer_id,
        category,
        units,
        SUM(units) OVER (PARTITION BY customer_id) AS all_units,
        ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY units DESC, category) AS _rank
    FROM category_units
),
affinity AS (
    SELECT customer_id, category AS top_category_365d,
        CAST(units AS DOUBLE) / CAST(all_units AS DOUBLE) AS top_category_share_365d
    FROM category_ranked
    WHERE _rank = 1 AND all_units > 0
),
future AS (
    SELECT
        customer_id,
        MAX(CASE WHEN order_ts < CAST('{{ until[30] }}' AS TIMESTAMP) THEN 1 ELSE 0 END) AS bought_30d,
        MAX(CASE WHEN order_ts < CAST('{{ until[90] }}' AS TIMESTAMP) THEN 1 ELSE 0 END) AS bought_90d
    FROM orders
    WHERE order_ts >= CAST('{{ as_of_end }}' AS TIMESTAMP)
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    CAST('{{ as_of }}' AS DATE) AS as_of,
    EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP) - CAST(c.signup_date AS TIMESTAMP))) - 1 AS tenure_days,
    c.loyalty_tier,
    EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP) - CAST(CAST(p.last_order_ts AS DATE) AS TIMESTAMP))) - 1
        AS recency_days,
    COALESCE(p.orders_lifetime, 0) AS orders_lifetime,
    COALESCE(h.order_days_lifetime, 0) AS order_days_lifetime,
    EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP) - CAST(GREATEST(c.signup_date, COALESCE(d.first_day, c.signup_date))
        AS TIMESTAMP))) AS observed_days,
    EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP) - CAST(CAST(p.first_order_ts AS DATE) AS TIMESTAMP))) - 1
        AS days_since_first_order,
    CAST(h.interval_mean_days AS DOUBLE) AS interval_mean_days,
    CAST(h.interval_std_days AS DOUBLE) AS interval_std_days,
    h.interval_max_days,
    h.interval_last_days,
    CASE WHEN h.interval_mean_days > 0 THEN (EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP)
        - CAST(CAST(p.last_order_ts AS DATE) AS TIMESTAMP))) - 1) / CAST(h.interval_mean_days AS DOUBLE) END AS recency_ratio,
    CAST(COALESCE(h.order_days_lifetime, 0) AS DOUBLE) / CAST(EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP)
        - CAST(GREATEST(c.signup_date, COALESCE(d.first_day, c.signup_date)) AS TIMESTAMP))) AS DOUBLE) AS order_rate,
    CAST(h.order_days_lifetime AS DOUBLE) * (EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP)
        - CAST(CAST(p.last_order_ts AS DATE) AS TIMESTAMP))) - 1) / CAST(EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP)
        - CAST(GREATEST(c.signup_date, COALESCE(d.first_day, c.signup_date)) AS TIMESTAMP))) AS DOUBLE)
        AS expected_orders_since_last,
    CASE WHEN p.frequency_365d > 0
        THEN CAST(p.frequency_90d AS DOUBLE) / CAST(p.frequency_365d AS DOUBLE) END AS frequency_trend_90d,
    CASE WHEN p.monetary_365d > 0
        THEN CAST(p.monetary_90d AS DOUBLE) / CAST(p.monetary_365d AS DOUBLE) END AS spend_trend_90d,
{%- for days in windows %}
    COALESCE(p.frequency_{{ days }}d, 0) AS frequency_{{ days }}d,
    CAST(COALESCE(p.monetary_{{ days }}d, 0) AS DECIMAL(14, 2)) AS monetary_{{ days }}d,
{%- endfor %}
{%- for channel in channels %}
    CASE WHEN p.frequency_365d > 0
        THEN CAST(p.{{ channel }}_orders_365d AS DOUBLE) / CAST(p.frequency_365d AS DOUBLE) END AS {{ channel }}_share_365d,
{%- endfor %}
    CASE WHEN p.monetary_365d > 0
        THEN CAST(p.discount_365d AS DOUBLE) / CAST(p.monetary_365d + p.discount_365d AS DOUBLE) END AS discount_share_365d,
    COALESCE(r.returns_90d, 0) AS returns_90d,
    CAST(COALESCE(r.refunds_90d, 0) AS DECIMAL(14, 2)) AS refunds_90d,
    COALESCE(a.product_views_30d, 0) AS product_views_30d,
    COALESCE(a.searches_30d, 0) AS searches_30d,
    COALESCE(a.wishlist_adds_30d, 0) AS wishlist_adds_30d,
    COALESCE(a.cart_adds_30d, 0) AS cart_adds_30d,
    COALESCE(b.cart_abandons_30d, 0) AS cart_abandons_30d,
    EXTRACT(DAY FROM (CAST('{{ as_of_end }}' AS TIMESTAMP) - CAST(CAST(a.last_visit_ts AS DATE) AS TIMESTAMP))) - 1
        AS days_since_visit,
    g.top_category_365d,
    g.top_category_share_365d,
    {% if complete[30] %}CASE WHEN f.bought_30d = 1 THEN 1 ELSE 0 END{% else %}CAST(NULL AS INT){% endif %} AS repurchase_30d,
    {% if complete[90] %}CASE WHEN f.bought_90d = 1 THEN 0 ELSE 1 END{% else %}CAST(NULL AS INT){% endif %} AS churn_90d
FROM customers AS c
LEFT JOIN per_customer AS p ON p.customer_id = c.customer_id
LEFT JOIN rhythm AS h ON h.customer_id = c.customer_id
CROSS JOIN data_start AS d
LEFT JOIN returned AS r ON r.customer_id = c.customer_id
LEFT JOIN activity AS a ON a.customer_id = c.customer_id
LEFT JOIN abandoned AS b ON b.customer_id = c.customer_id
LEFT JOIN affinity AS g ON g.customer_id = c.customer_id
LEFT JOIN future AS f ON f.customer_id = c.customer_id
WHERE c.signup_date <= CAST('{{ as_of }}' AS DATE)
ORDER BY c.customer_id
