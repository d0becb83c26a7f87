-- Stock on hand per store and product.
SELECT CAST(store_id AS BIGINT) AS store_id, product_id, CAST(on_hand AS BIGINT) AS on_hand FROM inventory
