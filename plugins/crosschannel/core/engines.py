"""The SQL in include/sql/, rendered once and run on either engine: DuckDB (local) or Spark (Glue 5.x).

A SQL file is a Jinja template (parameters only: table names, columns, keys; never data). Inputs are Arrow
tables registered under view names; the result comes back as an Arrow table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from crosschannel.core.config import BUNDLE_ROOT

if TYPE_CHECKING:
    import pyarrow as pa

SQL_ROOT = BUNDLE_ROOT / "include" / "sql"


def render(name: str, **params) -> str:
    """include/sql/<name> rendered with its parameters; undefined parameters are an error."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_ROOT), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(name).render(**params)


def stamp(day) -> str:
    """The start of `day` as the SQL files bind time bounds: 'YYYY-MM-DD 00:00:00' (no date arithmetic in SQL)."""
    return f"{day.isoformat()} 00:00:00"


def sql_type(column: sa.Column) -> str:
    """The column's type in the SQL both engines accept."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "BOOLEAN"
    if isinstance(kind, sa.Integer):
        return "BIGINT"
    if isinstance(kind, sa.Numeric):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    if isinstance(kind, sa.DateTime):
        return "TIMESTAMP"
    if isinstance(kind, sa.Date):
        return "DATE"
    return "STRING"


# Spark SQL functions DuckDB lacks, as DuckDB macros with Spark's results (both engines are tested on them):
# get_json_object gives a JSON value's text (a string unquoted, a number as Spark prints it, null as NULL);
# try_to_timestamp reads an ISO-8601 time with a zone as its UTC timestamp (NULL if it is not one), where DuckDB's
# CAST(... AS TIMESTAMP) would drop the offset; unix_seconds gives a timestamp's epoch seconds, rounded down.
DUCKDB_MACROS = (
    "CREATE MACRO get_json_object(j, p) AS json_extract_string(j, p)",
    "CREATE MACRO try_to_timestamp(x) AS TRY_CAST(TRY_CAST(x AS TIMESTAMPTZ) AS TIMESTAMP)",
    "CREATE MACRO unix_seconds(ts) AS CAST(epoch(date_trunc('second', ts)) AS BIGINT)",
)


def run_duckdb(sql: str, inputs: dict[str, pa.Table]) -> pa.Table:
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for macro in DUCKDB_MACROS:
            con.execute(macro)
        for name, table in inputs.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()


def run_spark(spark, sql: str, inputs: dict[str, pa.Table]) -> pa.Table:
    """The same SQL on a SparkSession (Glue, or local pyspark in tests); inputs are small enough to ship."""
    import pyarrow as pa
    from pyspark.sql import types as T

    for name, table in inputs.items():
        schema = T.StructType([T.StructField(f.name, _spark_type(f.type), True) for f in table.schema])
        spark.createDataFrame(table.to_pylist(), schema=schema).createOrReplaceTempView(name)
    result = spark.sql(sql)
    schema = pa.schema([(f.name, _arrow_type(f.dataType)) for f in result.schema])  # also when no row comes back
    return pa.Table.from_pylist([row.asDict() for row in result.collect()], schema=schema)


def _arrow_type(spark_type):
    import pyarrow as pa
    from pyspark.sql import types as T

    if isinstance(spark_type, T.DecimalType):
        return pa.decimal128(spark_type.precision, spark_type.scale)
    return {T.LongType: pa.int64(), T.IntegerType: pa.int32(), T.TimestampType: pa.timestamp("us"),
            T.DateType: pa.date32(), T.DoubleType: pa.float64(), T.BooleanType: pa.bool_()}.get(type(spark_type),
                                                                                            pa.string())


def _spark_type(arrow_type):
    import pyarrow as pa
    from pyspark.sql import types as T

    if pa.types.is_integer(arrow_type):
        return T.LongType()
    if pa.types.is_timestamp(arrow_type):
        return T.TimestampType()
    if pa.types.is_date(arrow_type):
        return T.DateType()
    if pa.types.is_decimal(arrow_type):
        return T.DecimalType(arrow_type.precision, arrow_type.scale)
    if pa.types.is_floating(arrow_type):
        return T.DoubleType()
    if pa.types.is_boolean(arrow_type):
        return T.BooleanType()
    return T.StringType()
