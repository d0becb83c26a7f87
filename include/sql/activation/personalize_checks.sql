-- What Amazon Personalize would refuse in a dataset's file, and the counts its minimum-data rule needs, computed
-- where the rows are (crosschannel.stages.activation.personalize reads these few rows). One row per finding, `kind`:
--   type   a float field the SQL does not give as a DECIMAL (a DOUBLE rounds to the cent differently on the two
--          engines): `example` its type, n: the rows
--   bad    a field's rows that break the schema (include/personalize/<dataset>.json) as Personalize reads it:
--          a null (in text, or an empty value) in a non-nullable field, a float that is not finite or outside
--          +-1e15, a timestamp outside 2000..2100 in epoch seconds, an id over 256 characters, a categorical value
--          over 1,000;
--          (a row breaks at most one of a field's rules: a null is no number and no text)
--          `example`: the 3 lowest such values as text, n: how many rows
--   rows   n: the dataset's rows
--   users  (with min_user_interactions) n: the users with at least that many rows
WITH {% include "activation/personalize_typed.sql" %},
bad AS (
    SELECT CAST(NULL AS STRING) AS field, CAST(NULL AS STRING) AS example FROM typed WHERE 1 = 0
{%- for f in fields %}
{%- if not f.nullable %}
    UNION ALL
    SELECT '{{ f.name }}', CAST({{ f.name }} AS STRING) FROM typed
    WHERE {{ f.name }} IS NULL{% if f.kind == "string" %} OR {{ f.name }} = ''{% endif %}
{%- endif %}
{%- if f.kind == "float" %}
    UNION ALL
    SELECT '{{ f.name }}', CAST({{ f.name }} AS STRING) FROM typed WHERE NOT ({{ f.name }} > -1e15 AND {{ f.name }} < 1e15)
{%- elif f.kind == "timestamp" %}
    UNION ALL
    SELECT '{{ f.name }}', CAST({{ f.name }} AS STRING) FROM typed
    WHERE NOT ({{ f.name }} BETWEEN {{ epoch_range[0] }} AND {{ epoch_range[1] }})
{%- elif f.limit %}
    UNION ALL
    SELECT '{{ f.name }}', CAST({{ f.name }} AS STRING) FROM typed WHERE length({{ f.name }}) > {{ f.limit }}
{%- endif %}
{%- endfor %}
)
SELECT 'bad' AS kind, field, example, CAST(n AS BIGINT) AS n
FROM (
    SELECT field, example, ROW_NUMBER() OVER (PARTITION BY field ORDER BY example NULLS FIRST) AS k,
           COUNT(*) OVER (PARTITION BY field) AS n
    FROM bad
) AS b
WHERE k <= 3
UNION ALL
SELECT 'rows', CAST(NULL AS STRING), CAST(NULL AS STRING), COUNT(*) FROM typed
{%- for f in fields if f.kind == "float" %}
UNION ALL
SELECT 'type', '{{ f.name }}', lower(typeof({{ f.name }})), COUNT(*) FROM typed
WHERE lower(typeof({{ f.name }})) NOT LIKE 'decimal%'
GROUP BY lower(typeof({{ f.name }}))
{%- endfor %}
{%- if min_user_interactions %}
UNION ALL
SELECT 'users', CAST(NULL AS STRING), CAST(NULL AS STRING), COUNT(*)
FROM (SELECT USER_ID FROM typed GROUP BY USER_ID HAVING COUNT(*) >= {{ min_user_interactions }}) AS u
{%- endif %}
