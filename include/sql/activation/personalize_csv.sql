-- An Amazon Personalize dataset's import file, one text line per row (the SQL job's `text` output): the header
-- (the schema's field names), then the rows sorted by every field, each line as Python's csv module writes it
-- (RFC 4180: a value holding a comma or a quote quoted, a quote doubled; a null as an empty field). Personalize
-- wants every record on one line: a line break in a value is written as a space.
-- A float is written to the cent in its shortest form as Python prints a float (59.9, 60.0), from its DECIMAL:
-- the same text on both engines (a DOUBLE's text differs between Java and Python); one outside +-1e15, infinite or
-- NaN is written empty, and personalize_checks.sql reports it, so the file is never sent.
WITH {% include "activation/personalize_typed.sql" %},
cleaned AS (
    SELECT
{%- for f in fields %}
        {% if f.kind == "float" -%}
        CASE WHEN {{ f.name }} > -1e15 AND {{ f.name }} < 1e15 THEN CAST({{ f.name }} AS DECIMAL(38, 2)) END
        {%- elif f.kind == "string" -%}
        replace(replace({{ f.name }}, chr(13), ' '), chr(10), ' ')
        {%- else %}{{ f.name }}{% endif %} AS {{ f.name }}{{ "," if not loop.last }}
{%- endfor %}
    FROM typed
),
lines AS (
    SELECT 0 AS header, '{{ fields | map(attribute="name") | join(",") }}' AS line
{%- for f in fields %},
        CAST(NULL AS {{ {"timestamp": "BIGINT", "long": "BIGINT", "float": "DECIMAL(38, 2)"}.get(f.kind, "STRING") }}) AS {{ f.name }}
{%- endfor %}
    FROM (SELECT 1 AS one) AS header_row
    UNION ALL
    SELECT 1, concat_ws(','
{%- for f in fields %},
        {% if f.kind == "float" -%}
        CASE WHEN {{ f.name }} IS NULL THEN ''
             WHEN CAST({{ f.name }} AS STRING) LIKE '%0'
             THEN substr(CAST({{ f.name }} AS STRING), 1, length(CAST({{ f.name }} AS STRING)) - 1)
             ELSE CAST({{ f.name }} AS STRING) END
        {%- elif f.kind in ("timestamp", "long") -%}
        COALESCE(CAST({{ f.name }} AS STRING), '')
        {%- else -%}
        CASE WHEN {{ f.name }} IS NULL THEN ''
             WHEN instr({{ f.name }}, ',') > 0 OR instr({{ f.name }}, '"') > 0 THEN concat('"', replace({{ f.name }}, '"', '""'), '"')
             ELSE {{ f.name }} END
        {%- endif %}
{%- endfor %})
{%- for f in fields %},
        {{ f.name }}
{%- endfor %}
    FROM cleaned
)
SELECT line FROM lines
ORDER BY header{% for f in fields %}, {{ f.name }} NULLS LAST{% endfor %}
