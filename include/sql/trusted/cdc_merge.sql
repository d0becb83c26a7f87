-- Current state of one source table at the end of the partition day, from DMS's full load and CDC.
--
-- Input `landing`: every landed row of the table as text (Op, dms_commit_ts, the table's columns), plus
-- _file_seq (file order: the full load's LOAD files, then the CDC files day by day, by name) and _row_seq
-- (row order inside its file). Only the files of the full load in effect and of the days up to the
-- partition are registered; a CDC file flushed after the day's end may also hold the next day's first
-- changes, which are left out (`until`; the first `load_files` files are the full load, always applied).
-- For each primary key the latest change wins: commit timestamp, then file order, then row order.
-- Keys whose latest change is a delete are dropped. A replayed change (the same row landed twice) yields
-- the same state.
--
-- Incremental (`since`: the day's start): input `base` is the table's published state at the end of the day
-- before (typed Parquet) and `landing` holds only the day's CDC files; the changes committed during the day
-- replace, add or delete their keys and every other key keeps its base row. The same rows as the merge from the
-- full load, reading one day of changes instead of every day since the full load.
-- Common subset of Spark SQL 3.5 and DuckDB: no QUALIFY, no :: casts.
WITH changes AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY {{ keys | join(", ") }}
            ORDER BY dms_commit_ts DESC, _file_seq DESC, _row_seq DESC
        ) AS _latest
    FROM landing
{%- if since %}
    WHERE dms_commit_ts >= '{{ since }}' AND dms_commit_ts < '{{ until }}'
{%- elif until %}
    WHERE _file_seq < {{ load_files }} OR dms_commit_ts < '{{ until }}'
{%- endif %}
),
latest AS (
    SELECT
        Op,
{%- for column in columns %}
        CAST({{ column.name }} AS {{ column.sql_type }}) AS {{ column.name }}{{ "," if not loop.last }}
{%- endfor %}
    FROM changes
    WHERE _latest = 1
)
SELECT {{ columns | map(attribute="name") | join(", ") }}
FROM latest
WHERE Op <> 'D'
{%- if since %}
UNION ALL
SELECT
{%- for column in columns %}
    CAST(b.{{ column.name }} AS {{ column.sql_type }}) AS {{ column.name }}{{ "," if not loop.last }}
{%- endfor %}
FROM base AS b
LEFT JOIN latest AS l ON {% for key in keys %}{{ "AND " if not loop.first }}b.{{ key }} = l.{{ key }} {% endfor %}
WHERE l.{{ keys[0] }} IS NULL
{%- endif %}
ORDER BY {{ keys | join(", ") }}
