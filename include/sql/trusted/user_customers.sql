-- Included by identity_map.sql and events.sql (a CTE): each userId of the day's `messages` as a customer id, from
-- `customers` (customer_id, external_id: the trusted customers of the day). A userId is the customer whose
-- external_id it is (the retailer's own ids, crosschannel.sim.byod), else the customer id it spells exactly (digits
-- that cast back to the same text: not '042', '42.0', '1e3' or ' 42', which engines cast differently), unless that
-- customer is known by an external id (then the number is not theirs); otherwise NULL.
user_customers AS (
    SELECT DISTINCT
        m.user_id,
        COALESCE(x.customer_id, CASE WHEN n.customer_id IS NULL THEN m.number END) AS customer_id
    FROM (
        SELECT user_id, CASE WHEN CAST(TRY_CAST(user_id AS BIGINT) AS STRING) = user_id
                             THEN TRY_CAST(user_id AS BIGINT) END AS number
        FROM messages
        WHERE user_id IS NOT NULL
    ) AS m
    LEFT JOIN customers AS x ON x.external_id = m.user_id
    LEFT JOIN customers AS n ON n.customer_id = m.number AND n.external_id IS NOT NULL
)
