"""Benchmark the activation stage at scale.

    PYTHONPATH=plugins .venv/bin/python bench/bench_activation.py --customers 100000 [--trials 1] [--max-rounds 60]

Needs the trusted partition of bench/bench_trusted.py at that size (.data/bench/generator-N/). Runs
`propensity_training` and `propensity_scoring` for 2026-11-01 with dag.test() (a small tuning budget: the models
are not what is measured), then times each activation step as the DAG runs it on the local target: the audience
SQL jobs, prepare (counts, profiles), the Pinpoint files and requests, the Customer Profiles upload file, the
Personalize SQL jobs and CSV export (a FULL load of the whole history), and the Segment messages. Prints one JSON
line and writes activation-result.json beside the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource

from benchkit import BUNDLE, Timer, retailer_root, use_retailer  # first: it puts plugins/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=60)
    args = parser.parse_args()
    root = retailer_root(args.customers)
    use_retailer(root, needs="features/customer/dt=2026-11-01/_SUCCESS", clean=("ml", "activation"),
                 run_first=f"bench/bench_trusted.py --customers {args.customers}",
                 CROSSCHANNEL__MODELS__MAX_TRIALS=str(args.trials),
                 CROSSCHANNEL__MODELS__MAX_ROUNDS=str(args.max_rounds))
    os.environ.update({
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(BUNDLE / ".data" / "airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(BUNDLE / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    from crosschannel.core import sqljobs
    from crosschannel.sim.demo import _run_dag
    from crosschannel.stages.activation import audiences, customer_profiles, personalize, pinpoint
    from crosschannel.stages.activation import profiles as activation
    from crosschannel.stages.activation import segment as segment_traits

    day = dt.date(2026, 11, 1)
    timed = Timer()
    timings = timed.seconds

    timed("training_dag", _run_dag, "propensity_training", day)
    timed("scoring_dag", _run_dag, "propensity_scoring", day)
    decision = activation.decide(day, force=True, backfill=False, run="bench")
    timed("audience_sql_jobs", lambda: [sqljobs.run_local(job) for job in audiences.plan(day)])
    prepared = timed("prepare", activation.prepare, day, decision)
    members, profile = audiences.read(day), activation.read_profiles(day)
    timed("pinpoint_files", pinpoint.plan_pinpoint, day, decision, members, profile)
    timed("customer_profiles_file", customer_profiles.plan_customer_profiles, day, decision, profile, "bench")
    timed("personalize_sql_jobs",
          lambda: [sqljobs.run_local(job) for job in personalize.plan_personalize(day, True, "bench")])
    plans = timed("personalize_export", personalize.export_personalize, day, decision, "bench")
    segment_plan = timed("segment_messages", segment_traits.plan, day, decision, profile)
    built = {k: segment_plan[k] for k in ("customers", "changed", "previously_published")}
    activation_total = sum(v for k, v in timings.items() if not k.endswith("_dag"))
    result = {
        "customers": args.customers, "profiles": prepared["profiles"], "audiences": prepared["audiences"],
        "personalize_records": {p["dataset"]: p["records"] for p in plans}, "segment": built,
        "seconds": timings, "activation_seconds": round(activation_total, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    (root / "activation-result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
