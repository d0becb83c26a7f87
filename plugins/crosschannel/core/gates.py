"""Great Expectations gates: a suite from include/expectations/ run with GX Core on a partition's data.

Each expectation carries `meta.severity`: `critical` failures stop the run (the gate raises, listing each
failed expectation with sample bad values), `warning` failures are reported. kwargs may say
`$partition_start` / `$partition_end` (the day's bounds). A suite's `meta.row_count_vs_previous`
({min_ratio, max_ratio, severity}) adds a row-count check against the previous partition's count, and
On an empty partition the column min/max expectations have nothing to bound and are left out; the
row-count checks judge it. `meta.references` ([{column, table, key, severity}]) checks referential
integrity: every non-null value of
the column must be a key of the referenced table in the same partition (order lines to orders to
customers, ...). The gate computes one `_references_<table>` flag column per reference for that.
GX is imported inside the gate (it takes seconds), never at DAG parse time. Results are kept per
partition under <root>/reports/dt=YYYY-MM-DD/gates/<suite>.json and rendered as GX Data Docs HTML in
<root>/reports/dt=YYYY-MM-DD/data_docs/.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crosschannel.core import paths, storage
from crosschannel.core.config import BUNDLE_ROOT
from crosschannel.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

SUITES = BUNDLE_ROOT / "include" / "expectations"
SAMPLE_SIZE = 5
_AGGREGATES = {"expect_column_max_to_be_between", "expect_column_min_to_be_between", "expect_column_mean_to_be_between"}


class GateFailed(DataError, RuntimeError):
    """Critical expectations failed; the message names the suite, table, column and sample bad values."""


@dataclass
class GateResult:
    suite: str
    partition: str
    rows: int
    failed_critical: list[dict] = field(default_factory=list)
    failed_warning: list[dict] = field(default_factory=list)
    checked: int = 0

    @property
    def success(self) -> bool:
        return not self.failed_critical

    def as_dict(self) -> dict:
        return {"suite": self.suite, "partition": self.partition, "rows": self.rows, "success": self.success,
                "expectations": self.checked, "failed_critical": self.failed_critical,
                "failed_warning": self.failed_warning}


def load_suite(name: str) -> dict:
    path = SUITES / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {name!r} at {path}")
    return json.loads(path.read_text())


def _bind(value, day: dt.date):
    bounds = {"$partition_start": dt.datetime.combine(day, dt.time(0)),
              "$partition_end": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0))}
    if isinstance(value, str) and value in bounds:
        return bounds[value]
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


def with_references(suite: dict, frame: pd.DataFrame, keys_of) -> tuple[pd.DataFrame, list[dict]]:
    """Flag columns and expectations for the suite's references; `keys_of(table, key)` gives the valid keys."""
    flags, expectations = {}, []
    for ref in suite.get("meta", {}).get("references", []):
        flag = f"_references_{ref['table']}_{ref['column']}"
        valid = frame[ref["column"]].isna() | frame[ref["column"]].isin(keys_of(ref["table"], ref["key"]))
        flags[flag] = valid.where(valid, frame[ref["column"]].astype(object))
        expectations.append({
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": flag, "value_set": [True]},
            "meta": {"severity": ref.get("severity", "critical"),
                     "references": f"{ref['column']} -> {ref['table']}.{ref['key']}"},
        })
    return frame.assign(**flags), expectations


class GateRun:
    """One GX Core ephemeral context for a partition's gates, with a Data Docs site built as they run.

    `publish_docs()` copies the site (index, suites, validation results as HTML) to
    <root>/reports/dt=YYYY-MM-DD/data_docs/ and returns the index's URL.
    """

    def __init__(self, day: dt.date, docs_name: str = "data_docs"):
        import great_expectations as gx

        self.gx = gx
        self.day = day
        self.docs_name = docs_name
        self.site = Path(tempfile.mkdtemp(prefix="crosschannel-data-docs-"))
        self.context = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.context.add_data_docs_site(site_name="partition", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(self.site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        self.batch = (self.context.data_sources.add_pandas("pandas").add_dataframe_asset("partition")
                      .add_batch_definition_whole_dataframe("whole"))

    def validate(self, suite_name: str, frame: pd.DataFrame, previous_rows: int | None = None,
                 keys_of=None) -> GateResult:
        """Run the suite on the frame and sort the failures by severity; a failed reference check's sample
        shows the dangling values themselves."""
        gx, day = self.gx, self.day
        suite = load_suite(suite_name)
        references: list[dict] = []
        if keys_of is not None:
            frame, references = with_references(suite, frame, keys_of)
        expectations = expectations_for(suite, day, previous_rows) + references
        if frame.empty:  # no values to bound: an empty partition is judged by its row-count checks
            expectations = [e for e in expectations if e["type"] not in _AGGREGATES]
        gx_suite = self.context.suites.add(gx.ExpectationSuite(
            name=suite["name"], expectations=expectations,
            meta=suite.get("meta", {})))
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_name}-{day}", data=self.batch, suite=gx_suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=f"{suite_name}-{day}", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["partition"])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}))
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        (outcome,) = run.run_results.values()
        result = GateResult(suite=suite_name, partition=day.isoformat(), rows=len(frame),
                            checked=len(outcome.results))
        for item in outcome.results:
            if item.success:
                continue
            config = item.expectation_config
            failure = {
                "expectation": config.type,
                "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")},
                "unexpected_count": item.result.get("unexpected_count"),
                "sample": [None if v != v else v for v in item.result.get("partial_unexpected_list", [])][:SAMPLE_SIZE],
                "observed": item.result.get("observed_value"),
            }
            severity = (config.meta or {}).get("severity", "critical")
            (result.failed_critical if severity == "critical" else result.failed_warning).append(failure)
        return result

    def publish_docs(self) -> str:
        target = paths.reports(self.day, self.docs_name)
        with storage.committing(target) as staging:
            for path in sorted(p for p in self.site.rglob("*") if p.is_file()):
                destination = staging / str(path.relative_to(self.site))
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(path.read_bytes())
        shutil.rmtree(self.site, ignore_errors=True)
        return storage.url_of(storage.resolve(target) / "index.html")


def record(result: GateResult) -> str:
    """Keep the result with the partition's reports; returns where."""
    path = paths.gate_report(dt.date.fromisoformat(result.partition), result.suite)
    storage.write_json(path, result.as_dict())
    return storage.url_of(path)


def enforce(results: list[GateResult]) -> None:
    """Raise GateFailed listing every failed critical expectation of every suite."""
    lines = []
    for result in results:
        for failure in result.failed_critical:
            where = f"{result.suite} (partition {result.partition}), column {failure['column']}"
            what = f"{failure['expectation']} {failure['kwargs'] or ''}".strip()
            found = f"failed on {failure['unexpected_count']} row(s); sample: {failure['sample']}"
            observed = f"; observed {failure['observed']}" if failure["observed"] is not None else ""
            lines.append(f"{where}: {what} {found}{observed}")
    if lines:
        raise GateFailed("critical expectations failed:\n  " + "\n  ".join(lines))
