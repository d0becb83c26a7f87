-- The catalogue: category, whether it is sold, when it was created.
SELECT product_id, category, active, created_at FROM products
