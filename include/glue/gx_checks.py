"""The gates' Great Expectations run, where the data is: GX Core on pandas in the worker (local target) or on Spark
inside the generic Glue job (aws target, `run_sql.py --gates_path`), with the same suites and the same results.

Deployed beside include/glue/run_sql.py and given to the Glue job as `--extra-py-files` (GX itself as
`--additional-python-modules`); the worker loads this very file (crosschannel.core.gates). It imports only GX and
the standard library.

A gate job's spec (JSON, planned by crosschannel.core.gates.plan_job): {"day": "YYYY-MM-DD", "suites": [{"name",
"table" ("zone/name", the data asset), "input" (a SQL job's parquet input), "expectations" (the suite's, with
`$partition_start` / `$partition_end` bound here, to the day), "meta", "key" (the table's key columns),
"skipped", "references": [{"table", "key", "input"}]}]}. `run_job` returns per suite {"suite", "table", "input", "rows",
"key", "skipped", "meta", "identifier", "validation"}: the GX validation result as JSON, each failure's
`partial_unexpected_index_list` holding the key and checked columns of up to SAMPLE_SIZE failing rows (GX's own on
Spark; on pandas read from the index labels GX samples, as GX's own key lookup walks every failing row in Python).

`expect_column_values_to_be_keys_of` (referential integrity): every non-null value of `column` must be a key of
`keys_table`.`keys_column` in the same partition. On pandas the keys are lent to the metric (`lending`); on Spark
the frame is joined to the keys first and the metric reads the joined flag (`flag(column)`), so no key list ever
travels as an expression.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

GX_LOGGER = "great_expectations"


def quiet() -> None:
    """GX's loggers at WARNING: its INFO lines (hundreds per gate under Airflow) bury the gate's own error."""
    children = [name for name in list(logging.root.manager.loggerDict) if name.startswith(f"{GX_LOGGER}.")]
    for name in [GX_LOGGER, *children]:
        logger = logging.getLogger(name)
        if name == GX_LOGGER or logger.level:  # the others inherit GX's level
            logger.setLevel(max(logger.level, logging.WARNING))


quiet()  # before GX's import: it logs INFO lines while it loads

from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import ColumnMapExpectation  # noqa: E402
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial  # noqa: E402

quiet()  # again: modules of GX set their loggers to INFO when imported

SAMPLE_SIZE = 5
KEYS_OF = "expect_column_values_to_be_keys_of"
AGGREGATES = {"expect_column_max_to_be_between", "expect_column_min_to_be_between", "expect_column_mean_to_be_between"}
_BOUND = re.compile(r"^\$partition_(start|end)(?:\s*-\s*(\d+)\s*days?)?$")
_LENT: dict[tuple[str, str], object] = {}


def bind(value, day: dt.date):
    """`$partition_start` / `$partition_end` (the day's bounds), optionally `- N days`, bound to the day."""
    match = _BOUND.match(value) if isinstance(value, str) else None
    if match:
        start = dt.datetime.combine(day if match[1] == "start" else day + dt.timedelta(days=1), dt.time(0))
        return start - dt.timedelta(days=int(match[2] or 0))
    if isinstance(value, dict):
        return {k: bind(v, day) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, day) for v in value]
    return value


def flag(column: str) -> str:
    """The Spark frame's column saying whether the row's `column` value is a key of the referenced table."""
    return f"__keys_of__{column}"


@contextlib.contextmanager
def lending(keys: dict[tuple[str, str], object]) -> Iterator[None]:
    """Make the keys of each (table, key column) available to the pandas metric while the block runs."""
    _LENT.update(keys)
    try:
        yield
    finally:
        for name in keys:
            _LENT.pop(name, None)


class ColumnValuesAreKeysOf(ColumnMapMetricProvider):
    condition_metric_name = "column_values.crosschannel_keys_of"
    condition_value_keys = ("keys_table", "keys_column")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, keys_table, keys_column, **kwargs):
        if (keys_table, keys_column) not in _LENT:
            raise LookupError(f"the gate lent no keys of {keys_table}.{keys_column}")
        return column.isin(_LENT[(keys_table, keys_column)])

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, keys_table, keys_column, _accessor_domain_kwargs, **kwargs):
        from pyspark.sql import functions as F

        return F.col(flag(_accessor_domain_kwargs["column"]))


class ExpectColumnValuesToBeKeysOf(ColumnMapExpectation):
    """Expect every non-null value of the column to be a key of another table in the same partition."""

    keys_table: str
    keys_column: str
    map_metric: ClassVar[str] = "column_values.crosschannel_keys_of"
    success_keys: ClassVar[tuple[str, ...]] = ("keys_table", "keys_column", "mostly")


def context():
    """An ephemeral GX context without analytics or progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet()
    found = gx.get_context(mode="ephemeral")
    found.enable_analytics(False)
    found.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    quiet()
    return found


def checked(kwargs: dict) -> list[str]:
    return [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))


class Pandas:
    """A pandas DataFrame as the gate checks it (decimals and timestamps made so by the worker)."""

    name = "pandas"

    @staticmethod
    def prepare(frame, references: list[tuple[str, str, str, Any]]):
        if frame.index.name is not None or not frame.index.is_unique:  # failing rows are sampled by index label
            frame = frame.reset_index(drop=True)
        lent = {(table, key): keys[key].dropna().unique() for _, table, key, keys in references}
        return frame, len(frame), list(frame.columns), lending(lent)

    @staticmethod
    def index_columns(key: list[str]) -> dict:
        return {}

    @staticmethod
    def sample(frame, labels: list, columns: list[str]) -> list[dict]:
        import pandas as pd

        rows = frame.loc[list(labels[:SAMPLE_SIZE]), columns].to_dict("records")
        return [{column: _plain(value, pd) for column, value in row.items()} for row in rows]


class Spark:
    """A Spark DataFrame: each reference joined in as a flag column, the frame cached for the suite's metrics."""

    name = "spark"

    @staticmethod
    def prepare(frame, references: list[tuple[str, str, str, Any]]):
        from pyspark.sql import functions as F

        for column, _, key, keys in references:
            if column not in frame.columns:  # the expectation fails on the missing column
                continue
            found = keys.select(F.col(key).alias("__key")).where(F.col("__key").isNotNull()).distinct()
            frame = (frame.join(found.withColumn("__found", F.lit(True)), frame[column] == found["__key"], "left")
                     .withColumn(flag(column), F.coalesce(F.col("__found"), F.lit(False))).drop("__key", "__found"))
        frame = frame.cache()
        return frame, frame.count(), list(frame.columns), _released(frame)

    @staticmethod
    def index_columns(key: list[str]) -> dict:
        return {"unexpected_index_column_names": key} if key else {}

    @staticmethod
    def sample(frame, labels: list, columns: list[str]) -> list[dict]:
        return [{column: row.get(column) for column in columns} for row in labels[:SAMPLE_SIZE]]


@contextlib.contextmanager
def _released(frame) -> Iterator[None]:
    """The suite's cached frame, released once its checkpoint has run (its failing rows come with GX's result)."""
    try:
        yield
    finally:
        frame.unpersist()


def _plain(value, pd):
    """A sample value as JSON keeps it: None for NaN/NaT, Python scalars, whole-number floats as ints (an id
    column with a null in it reaches pandas as floats)."""
    if pd.isna(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, str | int | float | bool) else str(value)


def run_suite(gx_context, suite: dict, frame, references: dict[tuple[str, str], Any], engine, day: dt.date) -> dict:
    """Validate one suite of a gate job's spec on its frame (`references`: (table, key) -> a frame holding the
    keys); returns the suite's result as JSON (see the module's doc)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    checks = [e["kwargs"] for e in suite["expectations"] if e["type"] == KEYS_OF]
    frame, rows, columns, lent = engine.prepare(frame, [
        (c["column"], c["keys_table"], c["keys_column"], references[(c["keys_table"], c["keys_column"])])
        for c in checks])
    expectations = [bind(e, day) for e in suite["expectations"]]
    if rows == 0:  # no values to bound: an empty partition is judged by its row-count checks
        expectations = [e for e in expectations if e["type"] not in AGGREGATES]
    key = [c for c in suite["key"] if c in columns]
    zone, _, asset = suite["table"].rpartition("/")
    zone = zone or engine.name
    known = gx_context.data_sources.all()
    source = known[zone] if zone in known else getattr(gx_context.data_sources, f"add_{engine.name}")(zone)
    batch = source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("partition")
    gx_suite = gx_context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=expectations,
                                                         meta=suite.get("meta", {})))
    definition = gx_context.validation_definitions.add(gx.ValidationDefinition(
        name=f"{suite['name']}-{day}", data=batch, suite=gx_suite))
    checkpoint = gx_context.checkpoints.add(gx.Checkpoint(
        name=f"{suite['name']}-{day}", validation_definitions=[definition],
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE,
                       **engine.index_columns(key)}))
    run_id = RunIdentifier(run_name=day.isoformat(), run_time=dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC))
    with lent:
        run = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    ((identifier, outcome),) = run.run_results.items()
    for item in outcome.results:
        labels = (item.result or {}).get("partial_unexpected_index_list") or []
        if not item.success and key and labels:
            sampled = list(dict.fromkeys([*key, *checked(item.expectation_config.kwargs)]))
            item.result["partial_unexpected_index_list"] = engine.sample(frame, labels, sampled)
        else:
            item.result.pop("partial_unexpected_index_list", None)
        item.result.pop("unexpected_index_column_names", None)
        item.result.pop("unexpected_index_query", None)
    # GX leaves the asset out of a dataframe batch's spec: the pages show it
    outcome.meta.setdefault("batch_spec", {})["data_asset_name"] = suite["table"]
    return {"suite": suite["name"], "table": suite["table"], "input": suite["input"], "rows": rows, "key": key,
            "skipped": suite.get("skipped", []), "meta": suite.get("meta", {}),
            "identifier": [str(part) for part in identifier.to_tuple()], "validation": outcome.to_json_dict()}


def run_job(spec: dict, read: Callable[[dict], Any], engine) -> list[dict]:
    """Every suite of the spec, read with `read(input)` (a pandas or Spark frame, as `engine`: Pandas or Spark)."""
    day = dt.date.fromisoformat(spec["day"])
    gx_context = context()
    results = []
    for suite in spec["suites"]:
        references = {(r["table"], r["key"]): read(r["input"]) for r in suite.get("references", [])}
        results.append(run_suite(gx_context, suite, read(suite["input"]), references, engine, day))
    return results
