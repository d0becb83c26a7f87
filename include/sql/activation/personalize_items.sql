-- Amazon Personalize items: every product of the trusted state (CREATION_TIMESTAMP becomes epoch seconds).
SELECT
    CAST(product_id AS STRING) AS ITEM_ID,
    category AS CATEGORY,
    brand AS BRAND,
    CAST(price AS DOUBLE) AS PRICE,
    created_at AS CREATION_TIMESTAMP
FROM products
