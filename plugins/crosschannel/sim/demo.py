"""`make demo`: the chain, as far as it exists, on the local target with a freshly generated retailer.

It rebuilds the synthetic retailer in the configured source DB and storage root, then for each demo day
advances the retailer one day and runs the stage DAGs for that partition with `dag.test()`, and finally
prints a summary and writes it to <root>/reports/demo_summary.json.

Campaign readouts: the generator plants a send of every audience `readouts.effect.planted_sends` days (30, 14 and 7)
before the first partition, committed as those days' delivered audiences, so each horizon's readout is due on the
first demo day; the audiences each demo day delivers change their treatment members' purchases from the next day
on (crosschannel.sim.campaigns). The summary's `readouts.<audience>.<horizon>` holds the latest readout of the demo's
days with the generator's true uplift of the same members.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from crosschannel.core import paths, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.sim import generator
from crosschannel.stages.ingest.landing import dms_summary
from crosschannel.stages.models import datasets
from crosschannel.stages.models.metrics import auc
from crosschannel.stages.readouts import report as readout_report
from crosschannel.stages.recommendations import evaluate as recommendation_eval
from crosschannel.stages.trusted.publish import summarize as trusted_summary
from crosschannel.wiring.defaults import test_run

STAGE_DAGS = ("retail_ingest", "retail_trusted")  # then training (first day) and scoring
TRAINING_DAG, SCORING_DAG, ACTIVATION_DAG = "propensity_training", "propensity_scoring", "audience_activation"
READOUT_DAG = "campaign_readout"


def _clean(cfg) -> None:
    """Remove what a previous demo left in the zones it writes (local target only)."""
    for zone in ("landing", "system", "generator", "reports", "staging", "trusted", "features", "ml", "activation"):
        path = paths.zone(zone)
        storage.remove(path)
    logs = storage.location(cfg.segment.logs_url) / cfg.segment.source_id
    storage.remove(logs)


def _run_dag(dag_id: str, day: dt.date) -> str:
    from airflow.dag_processing.dagbag import DagBag

    started = time.monotonic()
    bag = DagBag(str(BUNDLE_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    run = test_run(bag.dags[dag_id], day.isoformat())
    print(f"  {dag_id:<22} {run.state:<8} {time.monotonic() - started:6.1f} s")
    if run.state != "success":
        raise RuntimeError(f"{dag_id} for partition {day} ended {run.state}: see the task logs above")
    return run.state


def ingest_figures(day: dt.date) -> dict:
    """What the ingest stage committed for the partition, read back from its manifests."""
    dms_manifest = storage.read_json(storage.resolve(paths.dms_manifest(day)) / "manifest.json")
    segment_manifest = storage.read_json(storage.resolve(paths.segment_landing(day)) / "manifest.json")
    figures = {k: v for k, v in dms_summary(dms_manifest).items() if k != "partition"}
    return {
        **figures,
        "segment_messages": segment_manifest["messages"],
        "segment_by_type": segment_manifest["by_type"],
    }


def model_figures(day: dt.date) -> dict:
    """Each model's test AUC, its baseline's and the oracle's: the AUC of the generator's true probabilities
    on the same test rows (customers and as-of days), the best any model could do."""
    import pandas as pd

    retailer = generator.Retailer.load(generator.state_path())
    figures = {}
    for model, spec in get_config().models.specs.items():
        card = _card_trained(model, day)
        test = datasets.test_rows(model, day)
        truth = pd.concat([retailer.truth(as_of).assign(as_of=as_of) for as_of in sorted(set(test["as_of"]))])
        joined = test.merge(truth, on=["customer_id", "as_of"], how="inner")
        oracle = auc(joined[spec.label].to_numpy(), joined[f"p_{spec.label}"].to_numpy())
        figures[model] = {"version": card["version"], "promoted": card["promoted"], "decision": card["decision"],
                          "test_auc": round(card["metrics"]["auc"], 4),
                          "baseline_auc": round(card["baseline"]["auc"], 4), "oracle_auc": round(oracle, 4),
                          "baselines": {name: round(m["auc"], 4) for name, m in (card.get("baselines") or {}).items()},
                          "champion": card.get("serving_champion", card["version"]),
                          "test_rows": card["metrics"]["rows"], "oracle_rows": len(joined),
                          "report": storage.url_of(paths.reports(day, "models", f"{model}.html"))}
    return figures


def _card_trained(model: str, day: dt.date) -> dict:
    for version in sorted(paths.registry(model).glob("v*"), key=lambda p: p.name, reverse=True):
        card = storage.read_json(storage.resolve(version) / "card.json")
        if card["training_partition"] == day.isoformat():
            return card
    raise RuntimeError(f"model {model}: no version trained on {day}")


def score_figures(day: dt.date) -> dict:
    figures = {}
    for model in get_config().models.specs:
        gate = storage.read_json(paths.gate_report(day, f"scores_{model}"))
        figures[model] = {"rows": gate["rows"], "gate": gate["success"], "psi": gate["psi"],
                          "location": storage.url_of(paths.scores(model, day, "scores"))}
    return figures


def readout_figures(per_day: dict[str, dict]) -> dict:
    """Per audience and horizon, the latest readout of the demo's days and the generator's truth for its members:
    the conversion uplift's estimate and interval against the true uplift (campaigns.py)."""
    latest = {(r["audience"], r["horizon_days"]): r for day in sorted(per_day) for r in per_day[day]["readouts"]}
    figures: dict[str, dict] = {}
    for (audience, horizon), r in sorted(latest.items()):
        truth = generator.true_uplift(audience, dt.date.fromisoformat(r["send_day"]), horizon)
        conversion, incremental = r.get("conversion") or {}, r.get("incremental") or {}
        interval = conversion.get("interval")
        figures.setdefault(audience, {})[str(horizon)] = {
            "send_day": r["send_day"], "partition": r["window"][1],
            "treatment": r["treatment"]["members"], "control": r["control"]["members"],
            "conversion": {"treatment": r["treatment"]["conversion_rate"], "control": r["control"]["conversion_rate"]},
            "estimate": conversion.get("uplift"), "interval": interval,
            "relative": conversion.get("relative_uplift"), "relative_interval": conversion.get("relative_interval"),
            "significant": r["significant"], "underpowered": r["underpowered"],
            "true_uplift": truth["uplift"], "true_relative_uplift": truth["relative_uplift"],
            "covered": None if interval is None or truth["uplift"] is None else
            interval[0] <= truth["uplift"] <= interval[1],
            "incremental_orders": incremental.get("orders"), "true_incremental_orders": truth.get("incremental_orders"),
            "report": storage.url_of(paths.readouts(dt.date.fromisoformat(r["window"][1]), "readouts.html"))}
    return figures


def run(days: int = 3) -> dict:
    started = time.monotonic()
    cfg = get_config()
    if cfg.target != "local":
        raise SystemExit(f"the demo runs on the local target; the configuration says target={cfg.target!r}")
    _clean(cfg)
    print(f"generating a retailer of {cfg.generator.customers:,} customers ({cfg.generator.history_days} days)")
    history = generator.generate(cfg.generator, force=True, plant_sends=True)
    print(f"  history {history['first_day']} .. {history['last_day']}: "
          + ", ".join(f"{n:,} {t}" for t, n in history["rows"].items()) + f", {history['events']:,} events")
    history["planted_sends"] = generator.commit_planted_sends()
    print("  planted sends of every audience (members): "
          + ", ".join(f"{day} ({n:,})" for day, n in history["planted_sends"].items()))
    runs = {}
    trained = None
    for _ in range(days):
        (change,) = generator.advance(1)
        day = dt.date.fromisoformat(change["day"])
        print(f"partition {day}: the retailer's day ({change['events']:,} events), then the stage DAGs")
        for dag_id in STAGE_DAGS:
            _run_dag(dag_id, day)
        if trained is None:  # the weekly training, on the first partition
            _run_dag(TRAINING_DAG, day)
            trained = model_figures(day)
        _run_dag(SCORING_DAG, day)
        _run_dag(ACTIVATION_DAG, day)
        change["sends"] = generator.record_sends(day)  # the delivered audiences' effect, from the next day on
        _run_dag(READOUT_DAG, day)
        runs[day.isoformat()] = {"generator": change, "ingest": ingest_figures(day),
                                 "trusted": trusted_summary(day), "scores": score_figures(day),
                                 "activation": storage.read_json(
                                     paths.reports(day, "activation", "summary.json")),
                                 "readouts": readout_report.read(day)}
    last = max(runs)
    last_day = dt.date.fromisoformat(last)
    recommendations = recommendation_eval.evaluate(last_day)
    recommendation_eval.write(last_day, recommendations)
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
                    "dms": storage.url_of(paths.dms_landing()),
                    "manifests": storage.url_of(paths.dms_manifests()),
                    "segment": storage.url_of(paths.segment_landing()),
                },
                "runs": {day: r["ingest"] for day, r in runs.items()},
            },
            "trusted": {
                "rows": runs[last]["trusted"]["rows"],
                "gates": runs[last]["trusted"]["gates"],
                "gate_reports": runs[last]["trusted"]["gate_reports"],
                "data_docs": runs[last]["trusted"]["data_docs"],
                "features_rows": runs[last]["trusted"]["features_rows"],
                "features": storage.url_of(paths.features()),
                "location": storage.url_of(paths.zone("trusted")),
                "runs": {day: r["trusted"] for day, r in runs.items()},
            },
        },
        "models": trained,
        "scores": {day: r["scores"] for day, r in runs.items()},
        "audiences": runs[last]["activation"]["audiences"],
        "destinations": runs[last]["activation"]["destinations"],
        "activation": {day: r["activation"] for day, r in runs.items()},
        "generator": {day: r["generator"] for day, r in runs.items()},
        "readouts": readout_figures({day: r["readouts"] for day, r in runs.items()}),
        "recommendations": {recipe: {key: figures[key] for key in RECOMMENDATION_FIGURES}
                            for recipe, figures in recommendations.items()},
    }
    path = paths.demo_summary()
    storage.write_json(path, summary)
    print(render(summary, path))
    return summary


RECOMMENDATION_FIGURES = ("recall_at_10", "popularity_recall_at_10", "oracle_recall_at_10", "precision_at_10",
                          "ndcg_at_10", "coverage", "users", "train_until", "test_until")


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
    lines.append(f"{'':<12}(events: the partition day's typed Segment events; customer_360: one row per customer)")
    verdict = "passed" if trusted_stage["gates"].get("features_customer") else "FAILED"
    lines.append(f"{'':<12}{'features':<14}{trusted_stage['features_rows'] or 0:>12,}   gate {verdict}"
                 f"   ({trusted_stage['features']})")
    lines.append(f"Gate results: {trusted_stage['gate_reports']}")
    for url in trusted_stage["data_docs"].values():
        lines.append(f"Data Docs:    {url}")
    lines += ["", f"Models (trained on {summary['partitions'][0]}): test AUC vs the baselines and the oracle"]
    for model, figures in summary["models"].items():
        baselines = "  ".join(f"{name} {value:.3f}" for name, value in figures["baselines"].items())
        lines.append(f"{'':<12}{model:<14}{figures['version']:>6}  AUC {figures['test_auc']:.3f}  {baselines}  "
                     f"oracle {figures['oracle_auc']:.3f}  champion {figures['champion']}  ({figures['decision']})")
        lines.append(f"{'':<12}{'':<14}report {figures['report']}")
    lines.append("Scores per day (rows, gate, PSI vs the day before):")
    for day, per_model in summary["scores"].items():
        cells = "  ".join(f"{m} {f['rows']:,} {'passed' if f['gate'] else 'FAILED'}"
                          + ("" if f["psi"] is None else f" PSI {f['psi']:.3f}") for m, f in per_model.items())
        lines.append(f"{'':<12}{day}  {cells}")
    lines += ["", f"Audiences at {summary['partition']} (members; control = the hold-out, never sent):"]
    for name, counts in summary["audiences"].items():
        lines.append(f"{'':<12}{name:<22}{counts['treatment']:>8,} treatment {counts['control']:>7,} control")
    lines.append("Activation per day (files, validated requests, sent; the local target sends nothing to AWS; "
                 "recommendation lists answered / asked for members and catalogue items):")
    for day, figures in summary["activation"].items():
        cells = "  ".join(f"{d} {f['files']}/{f['requests']}/{f['sent']}" for d, f in figures["destinations"].items()
                          if d != "segment")
        segment = figures["destinations"]["segment"]
        recommended = "  ".join(f"{name} {r['answered']:,}/{r['lines']:,}"
                                for name, r in (figures.get("recommendations") or {}).items()) or "none"
        lines.append(f"{'':<12}{day}  {cells}  segment {segment['messages']:,} changed "
                     f"({next(iter(segment['receipts'].values()), '-')})  recommended {recommended}")
    lines += ["", "Campaign readouts: conversion uplift (treatment - control) with its interval, against the "
              "generator's true uplift",
              f"{'':<12}{'audience':<22}{'days':>5}{'sent':>12}{'treat':>7}{'ctrl':>6}{'estimate':>10}"
              f"{'interval':>20}{'truth':>9}  flags"]
    for audience, horizons in summary["readouts"].items():
        for horizon, f in horizons.items():
            interval = "-" if f["interval"] is None else f"[{f['interval'][0]:+.4f}, {f['interval'][1]:+.4f}]"
            flags = " ".join(name for name in ("significant", "underpowered") if f[name])
            if f["covered"] is False:
                flags += " truth-outside"
            estimate = "-" if f["estimate"] is None else f"{f['estimate']:+.4f}"
            truth = "-" if f["true_uplift"] is None else f"{f['true_uplift']:+.4f}"
            lines.append(f"{'':<12}{audience:<22}{horizon:>5}{f['send_day']:>12}{f['treatment']:>7,}{f['control']:>6,}"
                         f"{estimate:>10}{interval:>20}{truth:>9}  {flags}")
    lines += ["", "Recommendations (local recommender, 30-day holdout to the last partition): recall@10 against "
              "popularity and the oracle of the generator's true affinities"]
    for recipe, f in summary["recommendations"].items():
        oracle = "-" if f["oracle_recall_at_10"] is None else f"{f['oracle_recall_at_10']:.4f}"
        lines.append(f"{'':<12}{recipe:<30}recall {f['recall_at_10']:.4f}  popularity "
                     f"{f['popularity_recall_at_10']:.4f}  oracle {oracle}  coverage {f['coverage']:.2f}  "
                     f"({f['users']:,} customers)")
    lines += ["", f"Summary JSON: {Path(str(path.path))}"]
    return "\n".join(lines)
