-- Win-back: customers at high churn risk (the top two churn deciles) who have lapsed (no order for 60 days).
SELECT s.customer_id, CONCAT('churn decile ', CAST(s.decile AS STRING)) AS detail
FROM scores AS s
INNER JOIN features AS f ON f.customer_id = s.customer_id
WHERE s.model = 'churn' AND s.decile >= 9 AND f.recency_days >= 60
