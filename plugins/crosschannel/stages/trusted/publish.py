"""The trusted stage's gates: candidates are gated together and published only if no critical expectation fails;
what was published is summarized for the asset events and the demo.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel.core import dms, gates, paths, sqljobs, storage
from crosschannel.core.partition import run_hash
from crosschannel.stages.trusted.merge import TrustedInputError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)


def rows_in(folder: ObjectStoragePath) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in storage.resolve(folder).glob("*.parquet"):
        with path.open("rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def results_folder(day: dt.date, gate: str, run: str) -> ObjectStoragePath:
    """Where the run's gate job commits its results: <root>/staging/reports/gate_<gate>/dt=D/run=<hash>/."""
    return paths.candidate(f"gate_{gate}", day, zone_name="reports", run=run)


def _versions(source: dict) -> list[str]:
    """The committed versions an input names (`_v<time>-<random>`, never reused), wherever it was read from."""
    return [url.rstrip("/").rsplit("/", 1)[-1] for url in source["paths"]]


def plan_gate(day: dt.date, suites: dict[str, tuple[ObjectStoragePath, ObjectStoragePath]], gate: str,
              run: str) -> list[dict]:
    """The gate job over the run's candidates (a list of one: the SQL jobs' step maps over it).

    `suites` maps a suite name to (candidate, final) partition folders. Each suite checks its candidate's
    committed version, with the row-count check against the previous published partition and its references
    against the candidates gated together (`trusted_<table>`), else the trusted partition of the day. Each
    validation is labelled with its table as `zone/table` (trusted/orders).
    """
    for suite, (candidate, _) in suites.items():
        if not storage.is_committed(candidate):
            raise TrustedInputError(f"{storage.url_of(candidate)}: nothing was computed for {suite} on {day}")

    def keys_input(table: str, key: str) -> dict:
        if f"trusted_{table}" in suites:
            return sqljobs.parquet([suites[f"trusted_{table}"][0]])
        folder = paths.trusted(table, day)
        if not storage.is_committed(folder):
            raise TrustedInputError(f"{storage.url_of(folder)}: the reference table {table} is not published")
        return sqljobs.parquet([folder])

    planned = []
    for suite, (candidate, final) in suites.items():
        previous = paths.sibling(final, day - dt.timedelta(days=1))
        planned.append(gates.plan_suite(suite, f"{final.parent.parent.name}/{final.parent.name}",
                                        sqljobs.parquet([candidate]),
                                        rows_in(previous) if storage.is_committed(previous) else None, keys_input))
    return [gates.plan_job(day, f"gate_{gate}-{run_hash(run)}", planned, results_folder(day, gate, run))]


def gate_and_publish(day: dt.date, suites: dict[str, tuple[ObjectStoragePath, ObjectStoragePath]], gate: str,
                     run: str, docs_name: str) -> dict:
    """Read the gate job's results; only if no critical expectation failed, publish every candidate it checked.

    A failure leaves the published partitions as they were and raises with every failed expectation, sample
    values and the keys of their rows; warnings are reported. A candidate written again after its gate job ran
    (a cleared job of the run) is refused: its gate must run again. Results are kept per partition, Data Docs
    under reports/dt=.../<docs_name>.

    A retry finishes what a lost attempt began: the publishing is recorded in reports/dt=.../gates/ (`_record`), the
    candidates and the gate job's results are removed only once every candidate is published, so a retry publishes
    the rest (never a partition another run published meanwhile) or, when all were, cleans up and returns the same
    summary.
    """
    folder, record_path = results_folder(day, gate, run), _record(day, gate, run)
    record = storage.read_json(record_path) if record_path.exists() else None
    gated = storage.version_of(folder)
    if record is not None and record["done"] and gated in (record["results"], None):  # published: clean up
        _refuse_rewritten(suites, record, gate)
        _clean_up(suites, folder)
        return record["summary"]
    if record is not None and record["results"] != gated:
        record = None  # the gate job ran again since (the run was cleared): publish what it checked afresh
    found = {result["suite"]: result for result in gates.job_results(folder)}
    checked = gates.GateRun(day, docs_name=docs_name)
    results = []
    for suite, (candidate, _) in suites.items():
        if suite not in found:
            raise TrustedInputError(f"{storage.url_of(folder)}: the gate job has no result for {suite}: run "
                                    f"check_{gate} again")
        if _versions(found[suite]["input"]) != [storage.version_of(candidate)]:
            raise TrustedInputError(f"{storage.url_of(candidate)}: the candidate of {suite} was written again after "
                                    f"its gate job checked {found[suite]['input']['paths']}: run check_{gate} again")
        result = checked.add(found[suite])
        gates.record(result)
        results.append(result)
    data_docs = checked.publish_docs()
    log.info("Great Expectations Data Docs for %s: %s; in the Airflow UI: %s", day, data_docs, paths.reports_view(day))
    gates.enforce(results)
    summary = {"partition": day.isoformat(), "gates": {r.suite: r.success for r in results}, "data_docs": data_docs,
               "reports": paths.reports_view(day), "rows": {r.suite: r.rows for r in results},
               "warnings": {r.suite: len(r.failed_warning) for r in results if r.failed_warning}}
    if record is None:
        record = {"results": gated, "done": False, "pending": None, "written": {},
                  "candidates": {suite: storage.version_of(c) for suite, (c, _) in suites.items()},
                  "before": {suite: storage.version_of(final) for suite, (_, final) in suites.items()}}
    else:
        _refuse_overtaken(suites, record)
    for suite, (candidate, final) in suites.items():
        if suite in record["written"] and storage.version_of(final) == record["written"][suite]:
            continue  # the lost attempt published it
        storage.write_json(record_path, {**record, "pending": suite})
        storage.promote(candidate, final)
        record["written"][suite] = storage.version_of(final)
    storage.write_json(record_path, {**record, "pending": None, "done": True, "summary": summary})
    _clean_up(suites, folder)
    return summary


def _record(day: dt.date, gate: str, run: str) -> ObjectStoragePath:
    """The run's publishing of a gate's candidates: the results version and candidates it checked, each final's
    version before and as published, `pending` (the suite being published), `done` and the summary."""
    return paths.reports(day, "gates", f"publish_{gate}-{run_hash(run)}.json")


def _refuse_rewritten(suites: dict, record: dict, gate: str) -> None:
    for suite, (candidate, _) in suites.items():
        if storage.is_committed(candidate) and storage.version_of(candidate) != record["candidates"][suite]:
            raise TrustedInputError(f"{storage.url_of(candidate)}: the candidate of {suite} was written again after "
                                    f"this run published what its gate checked: run check_{gate} again")


def _refuse_overtaken(suites: dict, record: dict) -> None:
    """A retry does not publish over a partition another run published since this run began (its candidates are
    older); the suite the lost attempt was publishing may hold its own new version."""
    for suite, (_, final) in suites.items():
        allowed = {record["before"][suite], record["written"].get(suite)}
        if suite != record["pending"] and storage.version_of(final) not in allowed:
            raise TrustedInputError(f"{storage.url_of(final)}: published by another run since this run began "
                                    "publishing; not overwritten with this run's older candidates (clear the run from "
                                    "its merges to publish it again)")


def _clean_up(suites: dict, folder: ObjectStoragePath) -> None:
    for candidate, _ in suites.values():
        storage.remove(candidate)
    storage.remove(folder)  # kept in reports/; a failed gate's stay beside its candidates


def trusted_suites(day: dt.date, run: str = "") -> dict[str, tuple[ObjectStoragePath, ObjectStoragePath]]:
    """The trusted gate's suites: every merged table, the identity map and the typed events."""
    names = [*dms.mapped_tables(), "identity_map", "events"]
    return {f"trusted_{name}": (paths.candidate(name, day, run=run), paths.trusted(name, day)) for name in names}


def derived_suites(day: dt.date, run: str = "") -> dict[str, tuple[ObjectStoragePath, ObjectStoragePath]]:
    """The derived gate's suites: customer 360 and the customer features."""
    return {
        "trusted_customer_360": (paths.candidate("customer_360", day, run=run), paths.trusted("customer_360", day)),
        "features_customer": (paths.features_candidate(day, run), paths.features(day)),
    }


def summarize(day: dt.date) -> dict:
    """Rows per published partition and the gate outcomes for the day, read back from what was committed."""
    rows = {}
    for name in [*dms.mapped_tables(), "identity_map", "events", "customer_360"]:
        target = paths.trusted(name, day)
        if not storage.is_committed(target):
            raise TrustedInputError(f"{storage.url_of(target)}: the trusted partition of {name} was not committed")
        rows[name] = rows_in(target)
    reports = paths.reports(day, "gates")
    suites = [*trusted_suites(day), *derived_suites(day)]
    gate_results = {name: storage.read_json(reports / f"{name}.json")["success"] for name in suites
                    if (reports / f"{name}.json").exists()}
    docs = {name: storage.resolve(paths.reports(day, name)) / "index.html"
            for name in ("data_docs", "data_docs_derived")}
    customer_features = paths.features(day)
    return {"partition": day.isoformat(), "rows": rows, "gates": gate_results, "gate_reports": storage.url_of(reports),
            "data_docs": {name: storage.url_of(path) for name, path in docs.items() if path.exists()},
            "features_rows": rows_in(customer_features) if storage.is_committed(customer_features) else None}
