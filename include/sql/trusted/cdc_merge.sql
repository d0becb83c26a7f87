-- Current state of one source table at the end of the partition day, from DMS's full load and CDC.
--
-- Input `landing`: every landed row of the table as text (Op, dms_commit_ts, the table's columns), plus
-- _file_seq (file order: the full load's LOAD files, then the CDC files day by day, by name) and _row_seq
-- (row order inside its file). Only the files of the full load in effect and of the days up to the
-- partition are registered; a CDC file flushed after the day's end may also hold the next day's first
-- changes, which are left out (`until`; the first `load_files` files are the full load, always applied).
-- For each primary key the latest change wins: commit timestamp, then file order, then row order.
-- Keys whose latest change is a delete are dropped. A replayed change (the same row landed twice) yields
-- the same state. Common subset of Spark SQL 3.5 and DuckDB: no QUALIFY, no :: casts.
WITH changes AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY {{ keys | join(", ") }}
            ORDER BY dms_commit_ts DESC, _file_seq DESC, _row_seq DESC
        ) AS _latest
    FROM landing
{%- if until %}
    WHERE _file_seq < {{ load_files }} OR dms_commit_ts < '{{ until }}'
{%- endif %}
)
SELECT
{%- for column in columns %}
    CAST({{ column.name }} AS {{ column.sql_type }}) AS {{ column.name }}{{ "," if not loop.last }}
{%- endfor %}
FROM changes
WHERE _latest = 1 AND Op <> 'D'
ORDER BY {{ keys | join(", ") }}
