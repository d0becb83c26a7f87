-- The day's Segment messages, typed, deduplicated by messageId and attributed to customers.
--
-- Inputs: `segment_lines` (the day's landed messages, flattened by segment_messages.sql), `identities`
-- (identity_map.sql's output for the same day) and `customers` (user_customers.sql). A message keeps the customer
-- its userId names; otherwise its anonymousId is looked up, so anonymous browsing before an identify on the same
-- day (or from a device identified on an earlier day) is attributed to the customer (`stitched`). A userId that
-- is not a customer id stays NULL here and is caught by the gates. A replayed messageId counts once.
WITH {% include "trusted/segment_messages.sql" %},
{% include "trusted/user_customers.sql" %},
unique_messages AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY received_at, _file_seq, _row_seq) AS _first
    FROM messages
)
SELECT
    m.message_id,
    CASE WHEN m.message_type = 'track' THEN m.event ELSE m.message_type END AS event_name,
    m.event_ts,
    m.received_at,
    COALESCE(u.customer_id, i.customer_id) AS customer_id,
    u.customer_id IS NULL AND i.customer_id IS NOT NULL AS stitched,
    m.anonymous_id,
    m.channel,
    TRY_CAST(m.product_id AS BIGINT) AS product_id,
    m.category,
    TRY_CAST(m.price AS DECIMAL(12, 2)) AS price,
    TRY_CAST(m.quantity AS BIGINT) AS quantity,
    TRY_CAST(m.order_id AS BIGINT) AS order_id,
    TRY_CAST(m.revenue AS DECIMAL(12, 2)) AS revenue,
    m.search_query
FROM unique_messages AS m
LEFT JOIN user_customers AS u ON u.user_id = m.user_id
LEFT JOIN identities AS i ON i.anonymous_id = m.anonymous_id
WHERE m._first = 1
ORDER BY event_ts NULLS LAST, message_id
