-- Amazon Personalize interactions between `since` and the end of the partition day: every order line is a
-- purchase (EVENT_VALUE: its amount), every identified Product Viewed a view and Product Added an add-to-cart
-- (EVENT_VALUE: price x quantity). A FULL load starts at the beginning of the history, an INCREMENTAL one at the
-- start of the day. TIMESTAMP becomes epoch seconds when the CSV is written.
SELECT
    CAST(o.customer_id AS STRING) AS USER_ID,
    CAST(l.product_id AS STRING) AS ITEM_ID,
    o.order_ts AS TIMESTAMP,
    'purchase' AS EVENT_TYPE,
    CAST(l.quantity * l.unit_price AS DOUBLE) AS EVENT_VALUE
FROM orders AS o
INNER JOIN order_lines AS l ON l.order_id = o.order_id
WHERE o.order_ts >= CAST('{{ since }}' AS TIMESTAMP) AND o.order_ts < CAST('{{ until }}' AS TIMESTAMP)
UNION ALL
SELECT
    CAST(customer_id AS STRING) AS USER_ID,
    CAST(product_id AS STRING) AS ITEM_ID,
    event_ts AS TIMESTAMP,
    CASE WHEN event_name = 'Product Viewed' THEN 'view' ELSE 'add-to-cart' END AS EVENT_TYPE,
    CAST(price * COALESCE(quantity, 1) AS DOUBLE) AS EVENT_VALUE
FROM events
WHERE customer_id IS NOT NULL AND product_id IS NOT NULL
    AND event_name IN ('Product Viewed', 'Product Added')
    AND event_ts >= CAST('{{ since }}' AS TIMESTAMP) AND event_ts < CAST('{{ until }}' AS TIMESTAMP)
