-- Included by identity_map.sql and events.sql (a CTE, first): the day's landed Segment messages (`segment_lines`:
-- one JSON message per line as Segment's S3 destination writes them, with _file_seq and _row_seq, their place in
-- the day) flattened to the columns the trusted SQL reads. Ids and properties stay text (a number's JSON text:
-- 19.99 is '19.99'); the SQL that reads them casts. Times carry a zone (the landing check requires it) and become
-- UTC timestamps. Flattened here, by the engine that runs the job, so no message passes through the worker.
messages AS (
    SELECT
        get_json_object(line, '$.messageId') AS message_id,
        get_json_object(line, '$.type') AS message_type,
        get_json_object(line, '$.event') AS event,
        get_json_object(line, '$.userId') AS user_id,
        get_json_object(line, '$.anonymousId') AS anonymous_id,
        try_to_timestamp(get_json_object(line, '$.timestamp')) AS event_ts,
        try_to_timestamp(get_json_object(line, '$.receivedAt')) AS received_at,
        get_json_object(line, '$.context.channel') AS channel,
        get_json_object(line, '$.properties.product_id') AS product_id,
        get_json_object(line, '$.properties.category') AS category,
        get_json_object(line, '$.properties.price') AS price,
        get_json_object(line, '$.properties.quantity') AS quantity,
        get_json_object(line, '$.properties.order_id') AS order_id,
        COALESCE(get_json_object(line, '$.properties.revenue'), get_json_object(line, '$.properties.total')) AS revenue,
        get_json_object(line, '$.properties.query') AS search_query,
        _file_seq,
        _row_seq
    FROM segment_lines
)
