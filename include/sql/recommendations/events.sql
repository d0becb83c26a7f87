-- Identified product views (weight 1) and cart adds (weight 2) of the trusted events.
SELECT customer_id, product_id, event_ts AS ts,
    CASE WHEN event_name = 'Product Viewed' THEN 1.0 ELSE 2.0 END AS weight
FROM events
WHERE customer_id IS NOT NULL AND product_id IS NOT NULL AND event_name IN ('Product Viewed', 'Product Added')
