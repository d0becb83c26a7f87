"""Benchmark the trusted stage on a generated retailer, each SQL step against DuckDB's floor.

    PYTHONPATH=plugins .venv/bin/python bench/bench_trusted.py --customers 100000

Needs the retailer from `bench/bench_generator.py --customers N` (.data/bench/generator-N/). Runs, for the
first partition on the local target: the DMS full load and the landing check, the Segment landing, then
every SQL job of retail_trusted in order (the merges, the identity map, typed events, customer 360,
features) with the two gates between them, each timed. A SQL job's floor is DuckDB reading the same
input bytes (CSV as text, or Parquet) and writing them to Parquet with no transform; ratio = job / floor
says what the transform itself costs. Prints one JSON line and writes trusted-result.json beside the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from benchkit import retailer_root, use_retailer  # first: it puts plugins/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    root = retailer_root(args.customers)
    use_retailer(root, needs="source.db", run_first=f"bench/bench_generator.py --customers {args.customers}",
                 clean=("landing", "system", "staging", "trusted", "features", "reports"))
    import duckdb

    from crosschannel.core import gates, sqljobs
    from crosschannel.local import dms_task
    from crosschannel.stages.ingest import landing as dms_landing
    from crosschannel.stages.ingest import tasks as ingest
    from crosschannel.stages.trusted import events as trusted_events
    from crosschannel.stages.trusted import features, merge
    from crosschannel.stages.trusted import tasks as trusted_tasks

    def floor(job: dict) -> float:
        """DuckDB reading the job's inputs and writing them to Parquet untransformed."""
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
            started = time.perf_counter()
            for view, spec in sqljobs.job_inputs(job).items():
                paths = [p.removeprefix("file://") for p in spec["paths"]]
                if not paths:
                    continue
                reader = (f"read_csv({paths}, header = true, all_varchar = true)" if spec["format"] == "dms_csv"
                          else f"read_parquet({[p + '/*.parquet' for p in paths]})")
                con.execute(f"COPY (SELECT * FROM {reader}) TO '{tmp}/{view}.parquet' (FORMAT parquet)")
            return time.perf_counter() - started

    def run(step: str, jobs: list[dict]) -> None:
        for job in jobs:
            name = Path(job["--sql_path"]).stem
            started = time.perf_counter()
            rows = sqljobs.run_local(job)
            seconds = time.perf_counter() - started
            base = floor(job)
            steps[name] = {"step": step, "rows": rows, "seconds": round(seconds, 2), "floor_seconds": round(base, 2),
                           "ratio": round(seconds / base, 1) if base else None}

    def timed(fn, *args):
        started = time.perf_counter()
        value = fn(*args)
        return value, round(time.perf_counter() - started, 1)

    day = dt.date(2026, 11, 1)
    _, extract_seconds = timed(dms_task.LocalReplicationTask().start, "start-replication", day)
    manifest, check_seconds = timed(dms_landing.check_landing, day, "start-replication")
    _, segment_seconds = timed(ingest.land_segment_events, day)
    steps: dict[str, dict] = {}
    started = time.perf_counter()
    airflow_run = "manual__bench"  # the candidates are private to a run
    run("merge_table", merge.plan_merge(day, airflow_run))
    run("map_identities", trusted_events.plan_identities(day, airflow_run))
    run("type_events", trusted_events.plan_events(day, airflow_run))
    def gate(plan, publish) -> float:  # plan_gate_*, check_* (the gate job), gate_*
        started = time.perf_counter()
        for job in plan(day, airflow_run):
            gates.run_local(job)
        publish(day, airflow_run)
        return round(time.perf_counter() - started, 1)

    gate_trusted_seconds = gate(trusted_tasks.plan_gate_trusted, trusted_tasks.gate_trusted)
    run("build_derived", features.plan_derived(day, airflow_run))
    gate_derived_seconds = gate(trusted_tasks.plan_gate_derived, trusted_tasks.gate_derived)
    stage_seconds = time.perf_counter() - started
    result = {
        "customers": args.customers,
        "extract_seconds": extract_seconds,
        "landing_check_seconds": check_seconds,
        "segment_landing_seconds": segment_seconds,
        "landed_rows": sum(t["rows"] for t in manifest["tables"].values()),
        "trusted_stage_seconds": round(stage_seconds, 1),
        "sql_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "floor_seconds": round(sum(s["floor_seconds"] for s in steps.values()), 1),
        "gate_seconds": {"trusted": gate_trusted_seconds, "derived": gate_derived_seconds},
        "steps": steps,
    }
    (root / "trusted-result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
