"""Sizing on paper for AWS: each SQL job's cost measured on local Spark at two scales, extrapolated to Glue.

    make bench-sizing [ARGS="--roots .data,.data/bench_scale_100000 --day 2026-11-01"]
    (or: PYTHONPATH=plugins .venv/bin/python bench/sizing.py ...)

Needs two storage roots whose chain ran for `--day` (default: the demo's `.data` of `make demo`, 20,000 customers,
and `make bench-scale CUSTOMERS=100000`'s root). For each root it plans the day's SQL jobs again from that root's
state, as the DAGs do (the trusted merges, identity map, events, customer 360 and features; the training
snapshots and datasets), runs each through the Glue script (`include/glue/run_sql.py`'s `run()`) on a local Spark
3.5 session (`local[2]`: the two cores of this machine) into a temporary folder (the root's data is not changed,
its rendered SQL files are written again, the same; an input the run kept only as its candidate is read from the
published partition), and times it, after a first pass over the first root that is not counted (a JVM's first
jobs run several times slower). Per job kind the
seconds are fitted as `fixed + per_customer * customers` through the two scales.

The extrapolation assumes what the measurement cannot show: that a job's per-customer work spreads over a Glue
job's executor cores as it did over two local cores, and that every table grows with the customers. Glue
figures: `G.1X` workers (4 vCPU, 16 GB; one is the driver), a job's start-up (`--startup-seconds`, default 30)
and its fixed part added once, billed per second with a one-minute minimum at `--dpu-hour` dollars (default
0.44, AWS's Glue pricing page, us-east-1, read 2026-12-01). Writes .data/reports/sizing.json: {"day", "scales":
{root: {"customers", "jobs": {job: seconds}}}, "kinds": {kind: {"jobs", "fixed_seconds",
"per_million_customers_seconds"}}, "glue": {customers: {kind: {"workers", "minutes", "dpu_hours"}}}}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BUNDLE / "plugins"), str(BUNDLE / "bench"), str(BUNDLE)]

SIZES = (1_000_000, 10_000_000, 50_000_000)
WORKERS = {1_000_000: 2, 10_000_000: 10, 50_000_000: 40}  # G.1X workers per job at each size (one is the driver)
KINDS = (("merge", r"_cdc_merge\.sql$"), ("identity_map", r"^identity_map\.sql$"), ("events", r"^events\.sql$"),
         ("customer_360", r"^customer_360\.sql$"), ("customer_features", r"^customer_features\.sql$"),
         ("snapshots", r"^customer_features_as_of_"), ("datasets", r"_rows\.sql$|_training_summary\.sql$"))


def kind_of(name: str) -> str:
    return next(kind for kind, pattern in KINDS if re.search(pattern, name))


def plans(day: dt.date) -> list[dict]:
    from crosschannel.stages.models import datasets
    from crosschannel.stages.trusted import events, features, merge

    return [*merge.plan_merge(day), *events.plan_identities(day), *events.plan_events(day),
            *features.plan_derived(day), *datasets.plan_snapshots(day), *datasets.plan_datasets(day)]


def published(spec: dict) -> dict:
    """A parquet input the run read as its own candidate (staging/<zone>/<name>/dt=D/...) read from the published
    partition instead: the candidates are gone once published."""
    from crosschannel.core import storage

    paths = []
    for url in spec["paths"]:
        if spec["format"] == "parquet" and "/staging/" in url and not storage.is_committed(storage.location(url)):
            zone_name = re.search(r"/staging/(.+?/dt=\d{4}-\d{2}-\d{2})", url)[1]
            url = storage.url_of(storage.resolve(storage.location(url.split("/staging/")[0] + "/" + zone_name)))
        paths.append(url)
    return {**spec, "paths": paths}


def measure(root: Path, day: dt.date, spark, script) -> dict:
    from benchkit import use_retailer

    use_retailer(root)
    from crosschannel.core.config import get_config

    get_config.cache_clear()  # the root of this scale
    from crosschannel.core import paths, sqljobs

    customers = sqljobs.read_partition(paths.trusted("customers", day)).num_rows  # the day's trusted customers
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="sizing-") as tmp:
        for plan in plans(day):
            args = script.parse_args([token for pair in plan.items() for token in pair])
            name = Path(args["sql_path"]).name
            args["inputs"] = {view: published(spec) for view, spec in sqljobs.job_inputs(plan).items()}
            args.pop("inputs_path", None)
            args["output_path"] = (Path(tmp) / name).as_uri()
            started = time.perf_counter()
            script.run(spark, **args)
            seconds[name] = round(time.perf_counter() - started, 2)
            print(f"  {root.name}: {name} {seconds[name]} s", flush=True)
    return {"customers": customers, "jobs": seconds}


def fit(scales: list[dict]) -> dict:
    """Per job kind: the summed seconds of its jobs as fixed + per customer through the two scales."""
    (small, large) = sorted(scales, key=lambda s: s["customers"])
    kinds = {}
    for kind, _ in KINDS:
        jobs = [name for name in large["jobs"] if kind_of(name) == kind]
        totals = [sum(s["jobs"].get(name, 0.0) for name in jobs) for s in (small, large)]
        slope = max(totals[1] - totals[0], 0.0) / (large["customers"] - small["customers"])
        kinds[kind] = {"jobs": len(jobs), "fixed_seconds": round(max(totals[0] - slope * small["customers"], 0.0), 2),
                       "per_million_customers_seconds": round(slope * 1e6, 2)}
    return kinds


def glue(kinds: dict, startup: float, dpu_hour: float) -> dict:
    """Per size and kind: workers, wall minutes and DPU-hours of its Glue job runs (each run billed at least a
    minute); the local figures were two cores, a G.1X worker has four, the driver runs no tasks."""
    found = {}
    for size in SIZES:
        workers = WORKERS[size]
        cores = 4 * (workers - 1)
        per_kind = {}
        for kind, fitted in kinds.items():
            runs = max(fitted["jobs"], 1)
            work = fitted["per_million_customers_seconds"] * size / 1e6 * 2 / cores  # two local cores' seconds
            seconds = max(startup + (fitted["fixed_seconds"] + work) / runs, 60.0)  # each run, billed >= 1 minute
            per_kind[kind] = {"workers": workers, "runs": fitted["jobs"], "minutes_each": round(seconds / 60, 1),
                              "dpu_hours": round(seconds * fitted["jobs"] / 3600 * workers, 2),
                              "dollars": round(seconds * fitted["jobs"] / 3600 * workers * dpu_hour, 2)}
        found[size] = per_kind
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roots", default=".data,.data/bench_scale_100000")
    parser.add_argument("--day", default="2026-11-01")
    parser.add_argument("--startup-seconds", type=float, default=30.0)
    parser.add_argument("--dpu-hour", type=float, default=0.44)
    args = parser.parse_args()
    from pyspark.sql import SparkSession

    from tests.conftest import glue_script

    spark = (SparkSession.builder.master("local[2]").appName("crosschannel-sizing")
             .config("spark.driver.memory", "8g").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").config("spark.sql.shuffle.partitions", "4").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    day = dt.date.fromisoformat(args.day)
    roots = [(BUNDLE / r).resolve() for r in args.roots.split(",")]
    print("warming up (the first jobs of a JVM run several times slower): the first root's jobs, not counted")
    measure(roots[0], day, spark, glue_script())
    scales = {str(root): measure(root, day, spark, glue_script()) for root in roots}
    kinds = fit(list(scales.values()))
    result = {"day": args.day, "scales": scales, "kinds": kinds,
              "glue": glue(kinds, args.startup_seconds, args.dpu_hour),
              "assumptions": {"startup_seconds": args.startup_seconds, "dpu_hour_dollars": args.dpu_hour,
                              "workers": WORKERS, "worker_type": "G.1X"}}
    out = BUNDLE / ".data" / "reports" / "sizing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(kinds, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
