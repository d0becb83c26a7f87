"""Great Expectations gates: a suite from include/expectations/ run with GX Core on a partition's data, where the
data is: a gate job (`plan_job`) runs the suites with include/glue/gx_checks.py, on pandas in the worker on the
local target (`run_local`), on Spark inside the generic Glue job on aws (run_sql.py --gates_path), and commits
one result per suite; the worker reads only those (`job_results`, `GateRun.add`), never the data.

Each expectation carries `meta.severity`: `critical` failures stop the run (the gate raises, listing each
failed expectation with sample bad values and the keys of their rows), `warning` failures are reported. A
suite's `meta.key` names its table's key columns (order_id; order_id and line_no; ...): every failure of a row
check samples up to gx_checks.SAMPLE_SIZE of the failing rows' keys, so a message says which order, customer or
product to fix. kwargs may say `$partition_start` / `$partition_end` (the day's bounds). A suite's
`meta.row_count_vs_previous` ({min_ratio, max_ratio, severity}) adds a row-count check against the previous
partition's count. On an empty partition the column min/max expectations have nothing to bound and are left
out; the row-count checks judge it. `meta.references` ([{column, table, key, severity}]) checks referential
integrity: every non-null value of the column must be a key of the referenced table in the same partition
(order lines to orders to customers, ...), with gx_checks' `expect_column_values_to_be_keys_of`. `meta.needs`
on a suite or an expectation lists the sources it checks (`sources` of the config: events, products, stores,
contacts); when the retailer has not one of them, the expectation is skipped and the gate report says why (`skipped`).
GX is imported inside the gate (it takes seconds), never at DAG parse time, with its loggers at WARNING (its
INFO lines would bury the gate's own message). Results are kept per partition under
<root>/reports/dt=YYYY-MM-DD/gates/<suite>.json and rendered as GX Data Docs HTML in
<root>/reports/dt=YYYY-MM-DD/data_docs/ (offline: crosschannel.core.data_docs), each validation named by the
partition day (run name and run time) and its table (the data asset: `zone/table`, as under the storage root).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crosschannel.core import data_docs, paths, sqljobs, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

SUITES = BUNDLE_ROOT / "include" / "expectations"


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


def expectations_for(suite: dict, previous_rows: int | None) -> list[dict]:
    """The suite's expectations (the gate job binds the day in), plus the row-count check when there is a previous
    count."""
    expectations = list(suite["expectations"])
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


def references(suite: dict) -> tuple[list[dict], list[tuple[str, str]]]:
    """The expectations for the suite's references and the (table, key) pairs whose keys they check against."""
    expectations, keys = [], []
    for ref in suite.get("meta", {}).get("references", []):
        keys.append((ref["table"], ref["key"]))
        expectations.append({
            "type": "expect_column_values_to_be_keys_of",
            "kwargs": {"column": ref["column"], "keys_table": ref["table"], "keys_column": ref["key"]},
            "description": f"{ref['column']} values must be keys of {ref['table']}.{ref['key']} of the same "
                           "partition (or null)",
            "meta": {"severity": ref.get("severity", "critical"),
                     "references": f"{ref['column']} -> {ref['table']}.{ref['key']}"},
        })
    return expectations, list(dict.fromkeys(keys))


def plan_suite(name: str, table: str, source: dict | None, previous_rows: int | None = None,
               keys_input=None) -> dict:
    """One suite of a gate job (see include/glue/gx_checks.py): the suite's expectations for the retailer's
    sources, the row-count check and the reference checks (`keys_input(table, key)`: the parquet input holding
    the keys; no reference checks without it)."""
    suite = load_suite(name)
    expectations, refs = expectations_for(suite, previous_rows), []
    if keys_input is not None:
        checks, pairs = references(suite)
        expectations += checks
        refs = [{"table": t, "key": k, "input": keys_input(t, k)} for t, k in pairs]
    expectations, skipped = declared(suite, expectations)
    return {"name": name, "table": table, "input": source, "expectations": expectations,
            "meta": suite.get("meta", {}), "key": key_columns(suite), "skipped": skipped, "references": refs}


def glue_arguments() -> dict:
    """What a gate job needs on Glue besides its spec: GX Core (the worker's version) installed with pip, and
    include/glue/gx_checks.py, deployed beside the job's script, on the Python path (Glue's documented
    `--additional-python-modules` and `--extra-py-files`)."""
    from importlib.metadata import version

    script = get_config().aws.glue.script_location
    extra = {"--extra-py-files": script.rsplit("/", 1)[0] + "/gx_checks.py"} if script else {}
    return {"--additional-python-modules": f"great_expectations=={version('great_expectations')}", **extra}


def plan_job(day: dt.date, name: str, suites: list[dict], output: ObjectStoragePath) -> dict:
    """A gate job's arguments (the SQL jobs' Glue job runs it; locally `run_local`): its
    spec kept under <root>/system/sql/dt=YYYY-MM-DD/<name>.json, the results' partition folder."""
    spec = sqljobs.upload_sql(day, f"{name}.json", storage.json_text({"day": day.isoformat(), "suites": suites}))
    return {"--gates_path": storage.url_of(spec), "--output_path": storage.url_of(output), **glue_arguments()}


def checks():
    """include/glue/gx_checks.py, loaded once as the Glue job imports it (`gx_checks`): GX is imported here,
    inside the gate, never at DAG parse time."""
    import importlib.util
    import sys

    if "gx_checks" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gx_checks", BUNDLE_ROOT / "include" / "glue" / "gx_checks.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gx_checks"] = module
        spec.loader.exec_module(module)
    return sys.modules["gx_checks"]


def run_local(script_args: dict) -> int:
    """The local target's gate job: GX Core on pandas in the worker, the results committed as one JSON file per
    suite in the output partition (what the Glue job writes on aws); returns the suites run."""
    spec = storage.read_json(storage.location(script_args["--gates_path"]))
    frames: dict[str, pd.DataFrame] = {}  # a candidate is also the keys of the references to its table

    def read(source: dict) -> pd.DataFrame:
        name = json.dumps(source, sort_keys=True)
        if name not in frames:
            frames[name] = frame_of(sqljobs.read_input("gate", source))
        return frames[name]

    module = checks()
    found = module.run_job(spec, read, module.Pandas)
    with storage.committing(storage.location(script_args["--output_path"])) as staging:
        for result in found:
            (staging / f"{result['suite']}.json").write_text(json.dumps(result))
    return len(found)


def job_results(folder: ObjectStoragePath) -> list[dict]:
    """The committed results of a gate job, one per suite, by suite name."""
    if not storage.is_committed(folder):
        raise DataError(f"{storage.url_of(folder)}: the gate job committed no results")
    return [storage.read_json(path) for path in sorted(storage.resolve(folder).glob("*.json"))]


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


class GateRun:
    """A partition's gate results, with a GX Core Data Docs site built from their validations.

    `add(result)` takes a gate job's result for a suite (include/glue/gx_checks.py) and returns it as a
    GateResult; `validate(...)` runs a suite on a pandas frame in the worker and adds it. `publish_docs()` builds
    the site (index, suites, validation results as HTML), copies it to <root>/reports/dt=YYYY-MM-DD/<docs_name>/
    and returns the index's URL.
    """

    def __init__(self, day: dt.date, docs_name: str = "data_docs"):
        self.checks = checks()
        self.day = day
        self.docs_name = docs_name
        self.site = Path(tempfile.mkdtemp(prefix="crosschannel-data-docs-"))
        # removed with the gate also when no page is published; not at exit (a forked process would remove the
        # folder of the process that made it)
        weakref.finalize(self, shutil.rmtree, self.site, ignore_errors=True).atexit = False
        self.context = self.checks.context()
        self.site_name = f"partition {day}"  # the index's title
        self.context.add_data_docs_site(site_name=self.site_name, site_config=data_docs.site_config(self.site))
        self._checking = None

    def validate(self, suite_name: str, frame: pd.DataFrame, previous_rows: int | None = None,
                 keys_of=None, table: str | None = None) -> GateResult:
        """Run the suite on the frame in the worker (the partition of `table`, `zone/name`; the suite's name by
        default); `keys_of(table, key)` gives the keys its references check against."""
        import pandas as pd

        spec = plan_suite(suite_name, table or suite_name, None, previous_rows,
                          None if keys_of is None else (lambda t, k: None))
        keys = {(r["table"], r["key"]): pd.DataFrame({r["key"]: keys_of(r["table"], r["key"])})
                for r in spec["references"]}
        if self._checking is None:
            self._checking = self.checks.context()
        return self.add(self.checks.run_suite(self._checking, spec, frame, keys, self.checks.Pandas, self.day))

    def add(self, found: dict) -> GateResult:
        """A suite's result as the gate reports it (failures by severity, with sample values and the keys of their
        rows), its validation kept for the Data Docs site."""
        import great_expectations as gx
        from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
        from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

        outcome = expectationSuiteValidationResultSchema.load(found["validation"])
        key = found["key"]
        result = GateResult(suite=found["suite"], partition=self.day.isoformat(), rows=found["rows"],
                            checked=len(outcome.results), key=key, skipped=found["skipped"])
        for item in outcome.results:
            if item.success:
                continue
            config = item.expectation_config
            sampled = item.result.get("partial_unexpected_index_list") or []
            failure = {
                "expectation": config.type,
                "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")},
                "unexpected_count": item.result.get("unexpected_count"),
                "sample": [None if v != v else v for v in item.result.get("partial_unexpected_list", [])],
                "keys": [{c: row[c] for c in key} for row in sampled],
                "observed": item.result.get("observed_value"),
                **({"why": config.meta["why"]} if (config.meta or {}).get("why") else {}),
            }
            severity = (config.meta or {}).get("severity", "critical")
            (result.failed_critical if severity == "critical" else result.failed_warning).append(failure)
            if sampled and not set(key) <= set(self.checks.checked(config.kwargs)):  # else the values are the keys
                # as the pages show it: GX renders the keys of the sampled rows only beside a complete list of them
                # (the sample stands in for it)
                item.result.update(unexpected_index_list=sampled, unexpected_index_column_names=key,
                                   unexpected_list=item.result.get("partial_unexpected_list", []))
        self.context.suites.add(gx.ExpectationSuite(
            name=found["suite"], expectations=[r.expectation_config for r in outcome.results], meta=found["meta"]))
        identifier = ValidationResultIdentifier.from_tuple(tuple(found["identifier"]))
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
