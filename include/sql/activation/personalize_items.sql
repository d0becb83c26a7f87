-- Amazon Personalize items: every product of the trusted state (CREATION_TIMESTAMP becomes epoch seconds), with
-- STOCK_LOCATIONS, the field of the stock filter (crosschannel.stages.recommendations.solutions): 'S<store id>' for
-- every store holding stock and ONLINE when a store whose stock ships online does (`online_stores`: every store
-- when none is listed), '|'-joined as Personalize takes multiple categorical values; empty when out of stock.
SELECT
    CAST(p.product_id AS STRING) AS ITEM_ID,
    p.category AS CATEGORY,
    p.brand AS BRAND,
    p.price AS PRICE,
    p.created_at AS CREATION_TIMESTAMP,
    COALESCE(s.stock_locations, '') AS STOCK_LOCATIONS
FROM products AS p
LEFT JOIN (
    SELECT product_id, concat_ws('|', array_sort(array_agg(location))) AS stock_locations
    FROM (
        SELECT DISTINCT product_id, concat('S', CAST(store_id AS STRING)) AS location
        FROM inventory WHERE on_hand > 0
        UNION ALL
        SELECT DISTINCT product_id, 'ONLINE' AS location
        FROM inventory WHERE on_hand > 0{% if online_stores %} AND store_id IN ({{ online_stores | join(', ') }}){% endif %}
    ) AS l
    GROUP BY product_id
) AS s ON s.product_id = p.product_id
