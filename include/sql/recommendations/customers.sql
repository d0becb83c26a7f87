-- Customers, their home store (-1: none) and the id Personalize knows them by (USER_ID: the retailer's external_id,
-- else the customer id).
SELECT customer_id, COALESCE(CAST(home_store_id AS BIGINT), -1) AS home_store_id, signup_date,
    COALESCE(external_id, CAST(customer_id AS STRING)) AS user_id
FROM customers
