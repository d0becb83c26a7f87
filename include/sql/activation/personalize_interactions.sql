-- Amazon Personalize interactions between `since` and the end of the partition day: every order line is a
-- purchase (EVENT_VALUE: its amount), every identified Product Viewed a view and Product Added an add-to-cart
-- (EVENT_VALUE: price x quantity). A FULL load starts at the beginning of the history, an INCREMENTAL one at the
-- start of the day. TIMESTAMP becomes epoch seconds when the CSV is written (personalize_csv.sql). USER_ID is the id that leaves: the
-- retailer's external_id, else the customer id (a customer no longer in `customers`: its id).
WITH user_ids AS (
    SELECT customer_id, COALESCE(external_id, CAST(customer_id AS STRING)) AS user_id
    FROM customers
)
SELECT
    COALESCE(u.user_id, CAST(o.customer_id AS STRING)) AS USER_ID,
    CAST(l.product_id AS STRING) AS ITEM_ID,
    o.order_ts AS TIMESTAMP,
    'purchase' AS EVENT_TYPE,
    CAST(l.quantity * l.unit_price AS DECIMAL(38, 2)) AS EVENT_VALUE
FROM orders AS o
INNER JOIN order_lines AS l ON l.order_id = o.order_id
LEFT JOIN user_ids AS u ON u.customer_id = o.customer_id
WHERE o.order_ts >= CAST('{{ since }}' AS TIMESTAMP) AND o.order_ts < CAST('{{ until }}' AS TIMESTAMP)
UNION ALL
SELECT
    COALESCE(u.user_id, CAST(e.customer_id AS STRING)) AS USER_ID,
    CAST(e.product_id AS STRING) AS ITEM_ID,
    e.event_ts AS TIMESTAMP,
    CASE WHEN e.event_name = 'Product Viewed' THEN 'view' ELSE 'add-to-cart' END AS EVENT_TYPE,
    CAST(e.price * COALESCE(e.quantity, 1) AS DECIMAL(38, 2)) AS EVENT_VALUE
FROM events AS e
LEFT JOIN user_ids AS u ON u.customer_id = e.customer_id
WHERE e.customer_id IS NOT NULL AND e.product_id IS NOT NULL
    AND e.event_name IN ('Product Viewed', 'Product Added')
    AND e.event_ts >= CAST('{{ since }}' AS TIMESTAMP) AND e.event_ts < CAST('{{ until }}' AS TIMESTAMP)
