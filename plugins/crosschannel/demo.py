"""`make demo`: the chain, as far as it exists, on the local target with a freshly generated retailer.

It rebuilds the synthetic retailer in the configured source DB and storage root, then for each demo day
advances the retailer one day and runs the stage DAGs for that partition with `dag.test()`, and finally
prints a summary and writes it to <root>/reports/demo_summary.json.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from crosschannel import dms, generator, storage, trusted
from crosschannel.config import BUNDLE_ROOT, get_config
from crosschannel.ingest import dms_summary

STAGE_DAGS = ("retail_ingest", "retail_trusted")


def _clean(cfg) -> None:
    """Remove what a previous demo left in the zones it writes (local target only)."""
    for zone in ("landing", "system", "generator", "reports", "staging", "trusted", "features"):
        path = storage.zone(zone)
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    logs = storage.location(cfg.segment.logs_url) / cfg.segment.source_id
    if logs.exists():
        logs.fs.rm(logs.path, recursive=True)


def _run_dag(dag_id: str, day: dt.date) -> str:
    from airflow.dag_processing.dagbag import DagBag

    started = time.monotonic()
    bag = DagBag(str(BUNDLE_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    run = bag.dags[dag_id].test(run_conf={"partition": day.isoformat()})
    print(f"  {dag_id:<22} {run.state:<8} {time.monotonic() - started:6.1f} s")
    if run.state != "success":
        raise RuntimeError(f"{dag_id} for partition {day} ended {run.state}: see the task logs above")
    return run.state


def ingest_figures(day: dt.date) -> dict:
    """What the ingest stage committed for the partition, read back from its manifests."""
    cfg = get_config()
    dms_manifest = storage.read_json(dms.manifest_dir(day) / "manifest.json")
    segment_dir = storage.partition_dir("landing", "segment", cfg.segment.source_id, day=day.isoformat())
    segment_manifest = storage.read_json(segment_dir / "manifest.json")
    figures = {k: v for k, v in dms_summary(dms_manifest).items() if k != "partition"}
    return {
        **figures,
        "segment_messages": segment_manifest["messages"],
        "segment_by_type": segment_manifest["by_type"],
    }


def run(days: int = 3) -> dict:
    started = time.monotonic()
    cfg = get_config()
    if cfg.target != "local":
        raise SystemExit(f"the demo runs on the local target; the configuration says target={cfg.target!r}")
    _clean(cfg)
    print(f"generating a retailer of {cfg.generator.customers:,} customers ({cfg.generator.history_days} days)")
    history = generator.generate(cfg.generator, force=True)
    print(f"  history {history['first_day']} .. {history['last_day']}: "
          + ", ".join(f"{n:,} {t}" for t, n in history["rows"].items()) + f", {history['events']:,} events")
    runs = {}
    for _ in range(days):
        (change,) = generator.advance(1)
        day = dt.date.fromisoformat(change["day"])
        print(f"partition {day}: the retailer's day ({change['events']:,} events), then the stage DAGs")
        for dag_id in STAGE_DAGS:
            _run_dag(dag_id, day)
        runs[day.isoformat()] = {"generator": change, "ingest": ingest_figures(day),
                                 "trusted": trusted.summarize(day)}
    last = max(runs)
    summary = {
        "partition": last,
        "partitions": sorted(runs),
        "wall_seconds": round(time.monotonic() - started, 1),
        "storage_root": cfg.storage.url,
        "source": {"url": cfg.source.sqlalchemy_url, "history": history},
        "stages": {
            "ingest": {
                **runs[last]["ingest"],
                "landing": {
                    "dms": storage.url_of(dms.landing_root()),
                    "manifests": storage.url_of(storage.zone("landing", "manifests", "dms")),
                    "segment": storage.url_of(storage.zone("landing", "segment", cfg.segment.source_id)),
                },
                "runs": {day: r["ingest"] for day, r in runs.items()},
            },
            "trusted": {
                "rows": runs[last]["trusted"]["rows"],
                "gates": runs[last]["trusted"]["gates"],
                "gate_reports": runs[last]["trusted"]["gate_reports"],
                "data_docs": runs[last]["trusted"]["data_docs"],
                "features_rows": runs[last]["trusted"]["features_rows"],
                "features": storage.url_of(storage.zone("features", "customer")),
                "location": storage.url_of(storage.zone("trusted")),
                "runs": {day: r["trusted"] for day, r in runs.items()},
            },
        },
        "generator": {day: r["generator"] for day, r in runs.items()},
    }
    path = storage.zone("reports", "demo_summary.json")
    storage.write_json(path, summary)
    print(render(summary, path))
    return summary


def render(summary: dict, path) -> str:
    ingest = summary["stages"]["ingest"]
    lines = [
        "",
        f"Demo finished in {summary['wall_seconds']} s. Partitions: {', '.join(summary['partitions'])}.",
        f"Landed DMS files:     {ingest['landing']['dms']}",
        f"Partition manifests:  {ingest['landing']['manifests']}",
        f"Landed Segment files: {ingest['landing']['segment']}",
        "",
        f"{'partition':<12}{'table':<14}{'rows landed':>12}{'CDC I':>8}{'CDC U':>8}{'CDC D':>8}",
    ]
    for day, figures in ingest["runs"].items():
        lines.append(f"{day:<12}DMS {'full load + CDC' if figures['full_load'] else 'CDC'}")
        for table, rows in figures["rows"].items():
            ops = figures["cdc_ops"][table]
            lines.append(f"{'':<12}{table:<14}{rows:>12,}{ops['I']:>8,}{ops['U']:>8,}{ops['D']:>8,}")
        lines.append(f"{'':<12}{'Segment msgs':<14}{figures['segment_messages']:>12,}")
    lines += ["", f"Trusted current state at {summary['partition']} ({summary['stages']['trusted']['location']}):"]
    trusted_stage = summary["stages"]["trusted"]
    for table, rows in trusted_stage["rows"].items():
        verdict = "passed" if trusted_stage["gates"].get(f"trusted_{table}") else "FAILED"
        lines.append(f"{'':<12}{table:<14}{rows:>12,}   gate {verdict}")
    verdict = "passed" if trusted_stage["gates"].get("features_customer") else "FAILED"
    lines.append(f"{'':<12}{'features':<14}{trusted_stage['features_rows'] or 0:>12,}   gate {verdict}"
                 f"   ({trusted_stage['features']})")
    lines.append(f"Gate results: {trusted_stage['gate_reports']}")
    lines.append(f"Data Docs:    {trusted_stage['data_docs']}")
    lines += ["", f"Summary JSON: {Path(str(path.path))}"]
    return "\n".join(lines)
