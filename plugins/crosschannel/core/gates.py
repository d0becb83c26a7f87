"""Great Expectations gates: a suite from include/expectations/ run with GX Core on a partition's data.

Each expectation carries `meta.severity`: `critical` failures stop the run (the gate raises, listing each
failed expectation with sample bad values and the keys of their rows), `warning` failures are reported. A
suite's `meta.key` names its table's key columns (order_id; order_id and line_no; ...): every failure of a row
check samples up to SAMPLE_SIZE of the failing rows' keys, so a message says which order, customer or product to
fix. kwargs may say `$partition_start` / `$partition_end` (the day's bounds). A suite's
`meta.row_count_vs_previous` ({min_ratio, max_ratio, severity}) adds a row-count check against the previous
partition's count. On an empty partition the column min/max expectations have nothing to bound and are left
out; the row-count checks judge it. `meta.references` ([{column, table, key, severity}]) checks referential
integrity: every non-null value of the column must be a key of the referenced table in the same partition
(order lines to orders to customers, ...), with crosschannel.core.gate_references. `meta.needs` on a suite or an
expectation lists the sources it checks (`sources` of the config: events, products, stores, contacts); when the
retailer has not one of them, the expectation is skipped and the gate report says why (`skipped`).
GX is imported inside the gate (it takes seconds), never at DAG parse time, with its loggers at WARNING (its
INFO lines would bury the gate's own message). Results are kept per partition under
<root>/reports/dt=YYYY-MM-DD/gates/<suite>.json and rendered as GX Data Docs HTML in
<root>/reports/dt=YYYY-MM-DD/data_docs/ (offline: crosschannel.core.data_docs), each validation named by the
partition day (run name and run time) and its table (the data asset: `zone/table`, as under the storage root).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crosschannel.core import data_docs, paths, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SUITES = BUNDLE_ROOT / "include" / "expectations"
SAMPLE_SIZE = 5
GX_LOGGER = "great_expectations"
_AGGREGATES = {"expect_column_max_to_be_between", "expect_column_min_to_be_between", "expect_column_mean_to_be_between"}


class GateFailed(DataError, RuntimeError):
    """Critical expectations failed; the message names the suite, table, column, sample bad values and their keys."""


@dataclass
class GateResult:
    suite: str
    partition: str
    rows: int
    failed_critical: list[dict] = field(default_factory=list)
    failed_warning: list[dict] = field(default_factory=list)
    checked: int = 0
    key: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failed_critical

    def as_dict(self) -> dict:
        return {"suite": self.suite, "partition": self.partition, "rows": self.rows, "success": self.success,
                "expectations": self.checked, "key": self.key, "failed_critical": self.failed_critical,
                "failed_warning": self.failed_warning, "skipped": self.skipped}


def load_suite(name: str) -> dict:
    path = SUITES / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {name!r} at {path}")
    return json.loads(path.read_text())


def key_columns(suite: dict) -> list[str]:
    """The key of the suite's table (`meta.key`), whose values name a failing row."""
    return list(suite.get("meta", {}).get("key", []))


_BOUND = re.compile(r"^\$partition_(start|end)(?:\s*-\s*(\d+)\s*days?)?$")


def _bind(value, day: dt.date):
    """`$partition_start` / `$partition_end` (the day's bounds), optionally `- N days`, bound to the day."""
    match = _BOUND.match(value) if isinstance(value, str) else None
    if match:
        start = dt.datetime.combine(day if match[1] == "start" else day + dt.timedelta(days=1), dt.time(0))
        return start - dt.timedelta(days=int(match[2] or 0))
    if isinstance(value, dict):
        return {k: _bind(v, day) for k, v in value.items()}
    if isinstance(value, list):
        return [_bind(v, day) for v in value]
    return value


def expectations_for(suite: dict, day: dt.date, previous_rows: int | None) -> list[dict]:
    """The suite's expectations with the day bound in, plus the row-count check when there is a previous count."""
    expectations = [_bind(e, day) for e in suite["expectations"]]
    bounds = suite.get("meta", {}).get("row_count_vs_previous")
    if bounds and previous_rows:
        expectations.append({
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": int(previous_rows * bounds["min_ratio"]),
                       "max_value": int(previous_rows * bounds["max_ratio"]) + 1},
            "meta": {"severity": bounds.get("severity", "warning"), "previous_rows": previous_rows},
        })
    return expectations


def declared(suite: dict, expectations: list[dict]) -> tuple[list[dict], list[dict]]:
    """The expectations whose sources (`meta.needs` of the suite and of the expectation) the retailer has, and the
    others as {expectation, column, reason}."""
    sources, kept, skipped = get_config().sources, [], []
    for expectation in expectations:
        needs = [*suite.get("meta", {}).get("needs", []), *(expectation.get("meta") or {}).get("needs", [])]
        column = expectation["kwargs"].get("column") or expectation["kwargs"].get("column_list")
        reason = sources.missing(needs, f"{suite['name']}: {expectation['type']}" + (f" on {column}" if column else ""))
        if reason:
            skipped.append({"expectation": expectation["type"], "column": column, "reason": reason})
        else:
            kept.append(expectation)
    return kept, skipped


def references(suite: dict, keys_of) -> tuple[list[dict], dict[tuple[str, str], Any]]:
    """The expectations for the suite's references and the keys they check against (`keys_of(table, key)`)."""
    expectations, keys = [], {}
    for ref in suite.get("meta", {}).get("references", []):
        keys[(ref["table"], ref["key"])] = keys_of(ref["table"], ref["key"])
        expectations.append({
            "type": "expect_column_values_to_be_keys_of",
            "kwargs": {"column": ref["column"], "keys_table": ref["table"], "keys_column": ref["key"]},
            "description": f"{ref['column']} values must be keys of {ref['table']}.{ref['key']} of the same "
                           "partition (or null)",
            "meta": {"severity": ref.get("severity", "critical"),
                     "references": f"{ref['column']} -> {ref['table']}.{ref['key']}"},
        })
    return expectations, keys


_NANOSECONDS = (dt.datetime(1677, 9, 22), dt.datetime(2262, 4, 11))  # what datetime64[ns] holds


def frame_of(table: pa.Table) -> pd.DataFrame:
    """A partition as the gates check it: decimals as float64 and timestamps as datetime64[ns] where every value
    fits (GX's pandas engine compares those dtypes vectorised, any other value by value in Python: 14 s against
    6 s for the trusted gate at 100k customers); a timestamp column holding a value out of that range (a year 1
    or 9999 the gates are there to catch) stays as it is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        elif pa.types.is_timestamp(column.type) and column.type.tz is None:
            bounds = pc.min_max(column).as_py()
            if bounds["min"] is None or (_NANOSECONDS[0] <= bounds["min"] and bounds["max"] <= _NANOSECONDS[1]):
                column = column.cast(pa.timestamp("ns"))
        columns.append(column)
    return pa.table(columns, names=table.column_names).to_pandas()


def _plain(value):
    """A sample value as JSON keeps it: None for NaN/NaT, Python scalars, whole-number floats as ints (an id
    column with a null in it reaches pandas as floats)."""
    import pandas as pd

    if pd.isna(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, str | int | float | bool) else str(value)


def quiet_gx() -> None:
    """GX's loggers at WARNING: its INFO lines (hundreds per gate under Airflow) bury the gate's own error."""
    children = [name for name in list(logging.root.manager.loggerDict) if name.startswith(f"{GX_LOGGER}.")]
    for name in [GX_LOGGER, *children]:
        logger = logging.getLogger(name)
        if name == GX_LOGGER or logger.level:  # the others inherit GX's level
            logger.setLevel(max(logger.level, logging.WARNING))


def _checked(kwargs: dict) -> list[str]:
    return [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))


def _sampled_rows(frame: pd.DataFrame, item, key: list[str]) -> list[dict]:
    """The key and the checked columns of the failing rows GX sampled (by index label: GX's own key lookup,
    `unexpected_index_column_names`, walks every failing row in Python, minutes on a day that fails whole)."""
    labels = (item.result or {}).get("partial_unexpected_index_list") or []
    if not key or not labels:
        return []
    columns = list(dict.fromkeys([*key, *_checked(item.expectation_config.kwargs)]))
    rows = frame.loc[list(labels[:SAMPLE_SIZE]), columns].to_dict("records")
    return [{column: _plain(value) for column, value in row.items()} for row in rows]


class GateRun:
    """One GX Core ephemeral context for a partition's gates, with a Data Docs site built from its validations.

    `publish_docs()` builds the site (index, suites, validation results as HTML), copies it to
    <root>/reports/dt=YYYY-MM-DD/<docs_name>/ and returns the index's URL.
    """

    def __init__(self, day: dt.date, docs_name: str = "data_docs"):
        quiet_gx()  # before the import: GX logs INFO lines while it loads
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from crosschannel.core import gate_references

        quiet_gx()  # again: modules of GX set their loggers to INFO when imported
        self.gx = gx
        self.lending = gate_references.lending
        self.day = day
        self.docs_name = docs_name
        self.run_id = RunIdentifier(run_name=day.isoformat(),
                                    run_time=dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC))
        self.site = Path(tempfile.mkdtemp(prefix="crosschannel-data-docs-"))
        # removed with the gate also when no page is published; not at exit (a forked process would remove the
        # folder of the process that made it)
        weakref.finalize(self, shutil.rmtree, self.site, ignore_errors=True).atexit = False
        self.context = gx.get_context(mode="ephemeral")
        self.context.enable_analytics(False)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.site_name = f"partition {day}"  # the index's title
        self.context.add_data_docs_site(site_name=self.site_name, site_config=data_docs.site_config(self.site))
        self.sources: dict[str, Any] = {}

    def _batch(self, table: str):
        """The table as a data asset: `zone/name` is data source `zone`, asset `name` (pages show the asset)."""
        zone, _, name = table.rpartition("/")
        zone = zone or "pandas"
        if zone not in self.sources:
            self.sources[zone] = self.context.data_sources.add_pandas(zone)
        return self.sources[zone].add_dataframe_asset(name).add_batch_definition_whole_dataframe("partition")

    def validate(self, suite_name: str, frame: pd.DataFrame, previous_rows: int | None = None,
                 keys_of=None, table: str | None = None) -> GateResult:
        """Run the suite on the frame (the partition of `table`, `zone/name`; the suite's name by default) and
        sort the failures by severity. Each failure samples the bad values and the keys of their rows."""
        gx, day = self.gx, self.day
        suite = load_suite(suite_name)
        expectations, keys = expectations_for(suite, day, previous_rows), {}
        if keys_of is not None:
            checks, keys = references(suite, keys_of)
            expectations += checks
        if frame.empty:  # no values to bound: an empty partition is judged by its row-count checks
            expectations = [e for e in expectations if e["type"] not in _AGGREGATES]
        expectations, skipped = declared(suite, expectations)
        key = [c for c in key_columns(suite) if c in frame.columns]
        if frame.index.name is not None or not frame.index.is_unique:  # GX samples failing rows by index label
            frame = frame.reset_index(drop=True)
        gx_suite = self.context.suites.add(gx.ExpectationSuite(
            name=suite["name"], expectations=expectations, meta=suite.get("meta", {})))
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(
            name=f"{suite_name}-{day}", data=self._batch(table or suite_name), suite=gx_suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=f"{suite_name}-{day}", validation_definitions=[definition],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}))
        with self.lending(keys):
            run = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=self.run_id)
        ((identifier, outcome),) = run.run_results.items()
        result = GateResult(suite=suite_name, partition=day.isoformat(), rows=len(frame),
                            checked=len(outcome.results), key=key, skipped=skipped)
        for item in outcome.results:
            if item.success:
                continue
            config = item.expectation_config
            sampled = _sampled_rows(frame, item, key)
            failure = {
                "expectation": config.type,
                "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")},
                "unexpected_count": item.result.get("unexpected_count"),
                "sample": [None if v != v else v for v in item.result.get("partial_unexpected_list", [])][:SAMPLE_SIZE],
                "keys": [{c: row[c] for c in key} for row in sampled],
                "observed": item.result.get("observed_value"),
                **({"why": config.meta["why"]} if (config.meta or {}).get("why") else {}),
            }
            severity = (config.meta or {}).get("severity", "critical")
            (result.failed_critical if severity == "critical" else result.failed_warning).append(failure)
            if sampled and not set(key) <= set(_checked(config.kwargs)):  # else the values are the keys
                item.result.update(unexpected_index_list=sampled, unexpected_index_column_names=key,
                                   unexpected_list=item.result.get("partial_unexpected_list", []))
        # as the pages show it: GX leaves the asset out of a dataframe batch's spec, and renders the keys of the
        # sampled rows only beside a complete list of them (the sample stands in for it)
        outcome.meta.setdefault("batch_spec", {})["data_asset_name"] = table or suite_name
        self.context.validation_results_store.set(identifier, outcome)
        return result

    def publish_docs(self) -> str:
        self.context.build_data_docs(site_names=[self.site_name])
        target = paths.reports(self.day, self.docs_name)
        with storage.committing(target) as staging:
            data_docs.publish_site(self.site, staging)
        shutil.rmtree(self.site, ignore_errors=True)
        return storage.url_of(storage.resolve(target) / "index.html")


def record(result: GateResult) -> str:
    """Keep the result with the partition's reports; returns where."""
    path = paths.gate_report(dt.date.fromisoformat(result.partition), result.suite)
    storage.write_json(path, result.as_dict())
    return storage.url_of(path)


def _rows(keys: list[dict]) -> str:
    """The sampled rows' keys: `order_id [5001, 5002]`, `(order_id, line_no) [(5001, 1)]`."""
    columns = list(keys[0])
    if len(columns) == 1:
        return f"{columns[0]} {[row[columns[0]] for row in keys]}"
    return f"({', '.join(columns)}) {[tuple(row.values()) for row in keys]}"


def enforce(results: list[GateResult]) -> None:
    """Raise GateFailed listing every failed critical expectation of every suite."""
    lines = []
    for result in results:
        for failure in result.failed_critical:
            where = f"{result.suite} (partition {result.partition}), column {failure['column']}"
            what = f"{failure['expectation']} {failure['kwargs'] or ''}".strip()
            found = f"failed on {failure['unexpected_count']} row(s); sample: {failure['sample']}"
            checked = failure["column"] if isinstance(failure["column"], list) else [failure["column"]]
            named = failure.get("keys") and not set(failure["keys"][0]) <= set(checked)  # else the sample names them
            rows = f" at {_rows(failure['keys'])}" if named else ""
            observed = f"; observed {failure['observed']}" if failure["observed"] is not None else ""
            why = f" ({failure['why']})" if failure.get("why") else ""
            lines.append(f"{where}: {what} {found}{rows}{observed}{why}")
    if lines:
        days = sorted({dt.date.fromisoformat(r.partition) for r in results if r.failed_critical})
        pages = "".join(f"\n  {paths.reports_view(day)}" for day in days)
        raise GateFailed("critical expectations failed:\n  " + "\n  ".join(lines) + "\nReports in the Airflow UI "
                         f"(results, Data Docs):{pages}")
