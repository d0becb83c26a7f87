-- The identity map after the partition day: the customer each anonymous id (a device or browser) belongs to.
--
-- Inputs: `previous` (anonymous_id, customer_id, identified_at), the map after the previous day (empty on
-- the first day), `segment_lines`, the day's landed Segment messages (segment_messages.sql flattens them), and
-- `customers` (user_customers.sql). Any message carrying both ids links them (identify calls, and track calls
-- of a logged-in visitor). A device later identified as someone else follows its latest identification.
WITH {% include "trusted/segment_messages.sql" %},
{% include "trusted/user_customers.sql" %},
links AS (
    SELECT anonymous_id, customer_id, identified_at
    FROM previous
    UNION ALL
    SELECT m.anonymous_id, u.customer_id, m.event_ts AS identified_at
    FROM messages AS m
    INNER JOIN user_customers AS u ON u.user_id = m.user_id
    WHERE m.anonymous_id IS NOT NULL AND u.customer_id IS NOT NULL
),
ranked AS (
    SELECT
        anonymous_id,
        customer_id,
        identified_at,
        ROW_NUMBER() OVER (PARTITION BY anonymous_id ORDER BY identified_at DESC, customer_id DESC) AS _latest
    FROM links
)
SELECT anonymous_id, customer_id, identified_at
FROM ranked
WHERE _latest = 1
ORDER BY anonymous_id
