-- Customers and their home store (-1: none).
SELECT customer_id, COALESCE(CAST(home_store_id AS BIGINT), -1) AS home_store_id, signup_date FROM customers
