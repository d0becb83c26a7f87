-- The members of one audience ({{ audience }}) for the partition, each with a stable hold-out assignment.
--
-- `audience_sql` is an include/sql/audiences/ file: it returns customer_id and detail (why the customer is in).
-- Only customers of the day's features (the scored population) are members, each once.
-- The assignment: the first 8 hex digits of md5('<audience>:<customer_id>') below `control_below` (the
-- configured hold-out percentage of 16^8, in hex) put the member in the control group, the same every day;
-- lowercase hex strings of equal length compare like the numbers they spell.
WITH members AS (
{{ audience_sql }}
),
scored_members AS (
    SELECT m.customer_id, MIN(m.detail) AS detail
    FROM members AS m
    INNER JOIN features AS f ON f.customer_id = m.customer_id
    GROUP BY m.customer_id
)
SELECT
    '{{ audience }}' AS audience,
    customer_id,
    detail,
    CASE WHEN SUBSTR(MD5(CONCAT('{{ audience }}', ':', CAST(customer_id AS STRING))), 1, 8) < '{{ control_below }}'
        THEN 'control' ELSE 'treatment' END AS assignment
FROM scored_members
