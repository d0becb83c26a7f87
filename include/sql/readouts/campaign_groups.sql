-- The treatment and control groups of the sends whose readout is due, with the sufficient statistics of the readout
-- (crosschannel.stages.readouts.stats): members, converters (at least one order in the window), and the sums and
-- sums of squares of orders and revenue (order totals) per member.
--
-- One block per send horizon: `members_<days>d` holds the members (audience, customer_id, assignment) of every
-- audience sent `days` days before the partition; its window is from the start of the day after the send to the
-- end of the partition day ('YYYY-MM-DD HH:MM:SS' bounds, bound by the caller). `orders` is the partition's
-- trusted orders. A member without an order in the window counts with zeros.
--
-- Recommendations: where the send day committed its members' lists (`recommended_<days>d`: customer_id, product_id;
-- crosschannel.stages.activation.recommended, treatment and control alike), `listed` counts the members with a list
-- and `bought_listed` those who bought one of its items in the window (`order_lines` of the partition); else NULL.
-- A control member who was a treatment member of another audience sent that day received its list, so it counts
-- in neither for this measure.
{% for send in sends %}
{% if not loop.first %}UNION ALL
{% endif %}SELECT
    m.audience,
    '{{ send.day }}' AS send_day,
    CAST({{ send.horizon }} AS BIGINT) AS horizon_days,
    m.assignment,
    CAST(COUNT(*) AS BIGINT) AS members,
    CAST(SUM(CASE WHEN o.orders > 0 THEN 1 ELSE 0 END) AS BIGINT) AS converters,
    CAST(SUM(COALESCE(o.orders, 0)) AS DOUBLE) AS orders,
    CAST(SUM(COALESCE(o.orders * o.orders, 0)) AS DOUBLE) AS orders_sq,
    CAST(SUM(COALESCE(o.revenue, 0)) AS DOUBLE) AS revenue,
    CAST(SUM(COALESCE(o.revenue * o.revenue, 0)) AS DOUBLE) AS revenue_sq,
{% if send.recommended %}    CAST(SUM(CASE WHEN r.customer_id IS NOT NULL AND t.customer_id IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS listed,
    CAST(SUM(CASE WHEN r.bought = 1 AND t.customer_id IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS bought_listed
{% else %}    CAST(NULL AS BIGINT) AS listed,
    CAST(NULL AS BIGINT) AS bought_listed
{% endif %}FROM members_{{ send.horizon }}d AS m
LEFT JOIN (
    SELECT customer_id, CAST(COUNT(*) AS DOUBLE) AS orders, SUM(CAST(total AS DOUBLE)) AS revenue
    FROM orders
    WHERE order_ts >= CAST('{{ send.window_start }}' AS TIMESTAMP) AND order_ts < CAST('{{ window_end }}' AS TIMESTAMP)
    GROUP BY customer_id
) AS o ON o.customer_id = m.customer_id
{% if send.recommended %}LEFT JOIN (
    SELECT rl.customer_id, MAX(CASE WHEN b.product_id IS NOT NULL THEN 1 ELSE 0 END) AS bought
    FROM recommended_{{ send.horizon }}d AS rl
    LEFT JOIN (
        SELECT DISTINCT bo.customer_id, bl.product_id
        FROM orders AS bo
        INNER JOIN order_lines AS bl ON bl.order_id = bo.order_id
        WHERE bo.order_ts >= CAST('{{ send.window_start }}' AS TIMESTAMP)
            AND bo.order_ts < CAST('{{ window_end }}' AS TIMESTAMP)
    ) AS b ON b.customer_id = rl.customer_id AND b.product_id = rl.product_id
    GROUP BY rl.customer_id
) AS r ON r.customer_id = m.customer_id
LEFT JOIN (  -- a control member treated in another audience that day got its list: not a control for this measure
    SELECT DISTINCT customer_id FROM members_{{ send.horizon }}d WHERE assignment = 'treatment'
) AS t ON t.customer_id = m.customer_id AND m.assignment = 'control'
{% endif %}GROUP BY m.audience, m.assignment
{% endfor %}
