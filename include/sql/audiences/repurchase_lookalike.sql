-- Repurchase lookalike seed: the top repurchase decile, the seed a display partner grows a lookalike from.
SELECT customer_id, 'repurchase decile 10' AS detail
FROM scores
WHERE model = 'repurchase' AND decile = 10
