-- The CTEs both Personalize file jobs start from (included by personalize_csv.sql and personalize_checks.sql):
-- `body`, a dataset's SQL (personalize_<dataset>.sql), and `typed`, its fields as the CSV holds them, in the
-- schema's order (include/personalize/<dataset>.json): a *TIMESTAMP long as epoch seconds (a timestamp in the SQL),
-- another long as BIGINT, a float as it is (the CSV writes it to the cent), anything else as text.
body AS (
{{ body }}
),
typed AS (
    SELECT
{%- for f in fields %}
        {% if f.kind == "timestamp" %}unix_seconds(CAST({{ f.name }} AS TIMESTAMP))
        {%- elif f.kind == "long" %}CAST({{ f.name }} AS BIGINT)
        {%- elif f.kind == "float" %}{{ f.name }}
        {%- else %}CAST({{ f.name }} AS STRING){% endif %} AS {{ f.name }}{{ "," if not loop.last }}
{%- endfor %}
    FROM body
)
