"""`python -m crosschannel backtest`: how the models would have done on a retailer's own order history.

    python -m crosschannel backtest --orders orders.csv [--customers customers.csv] --cutoffs 2024-03-31,2024-06-30
        [--root DIR] [--date-format F]

For each cutoff day C, in its own root (<root>/cutoff-C/: a source DB, a storage root, Segment logs), the files
are imported as the source held them at the start of C+1 (`import_csv(before=C+1)`: order lines up to C), the
sources the files lack are declared absent, and the real DAGs run for partition C exactly as a deployment installed
that day would: retail_ingest (the first full load), retail_trusted, propensity_training and propensity_scoring,
with dag.test() on the local target. The trusted state at C is therefore the source as it was that day: nothing
after C reaches the models.

Then, on every customer with an order up to C, the scores at C are held against what happened after C in the full
files: each model's label as its spec says (`models.specs`: an order, or none, in the `horizon_days` after C;
churn_90d and repurchase_30d as shipped), as include/sql/trusted/customer_features.sql defines it. Per model and
cutoff, the AUC, top-decile lift and calibration error of: the champion that scored C, the model trained at C
(promoted or not), and the RFM and BG/NBD baselines fitted at C on the same training rows the promotion rule uses.
Written to <root>/reports/backtest/summary.json and summary.html; progress is printed as it goes.

`python -m crosschannel replay --from D --to D2 [--dags ...]` (`replay`) runs the history day by day instead, in
the configured root, as production would have seen it: per day, the source clock is set to the day's end and
the DAGs (by default retail_ingest and retail_trusted) run for it; the local DMS stand-in lands what the import
logged as committed that day (crosschannel.local.dms_task). The first day is a full load of what was committed
by its end, so a replay starts in a root where retail_ingest has not run yet.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import time
from pathlib import Path

from crosschannel.core import paths, sagemaker, source, sqljobs, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.sim import byod, demo
from crosschannel.sim import byod_files as files
from crosschannel.stages.models import registry
from crosschannel.stages.models.datasets import manifests, read_snapshots
from crosschannel.stages.models.metrics import evaluate, finite, stable_hash

DAGS = ("retail_ingest", "retail_trusted", "propensity_training", "propensity_scoring")
REPLAYED = ("retail_ingest", "retail_trusted")
SHOWN = ("auc", "top_decile_lift", "calibration_error", "rows", "positive_rate")


class BacktestError(ValueError):
    """A cutoff outside the files' history, or a run that did not succeed; the message says which."""


def _environment(root: Path, absent: list[str]) -> dict[str, str]:
    """The configuration of one cutoff's run: its own root, source DB and Segment logs; the absent sources."""
    return {"CROSSCHANNEL__TARGET": "local", "CROSSCHANNEL__STORAGE__ROOT": str(root / "root"),
            "CROSSCHANNEL__SOURCE__URL": f"sqlite:///{root / 'source.db'}",
            "CROSSCHANNEL__SEGMENT__LOGS_URI": str(root / "segment-logs"),
            **{f"CROSSCHANNEL__SOURCES__{name.upper()}": "false" for name in absent}}


def outcome_days() -> int:
    """The days of outcomes a cutoff needs after it: the longest label window of `models.specs`."""
    return max(spec.horizon_days for spec in get_config().models.specs.values())


def read_orders(orders_csv: str, cutoffs: list[dt.date], **layout):
    """The full orders file (`layout`: import_csv's date_format, delimiter and columns), once every cutoff is known
    to have history before it and the days of outcomes after it that the longest label window needs."""
    problems: list = []
    days = outcome_days()
    orders = files.orders(files.order_file(orders_csv, problems, **layout))
    files.raise_if_any(problems)
    first, last = orders.order_ts.min().date(), orders.order_ts.max().date()
    for cutoff in cutoffs:
        if not first <= cutoff <= last - dt.timedelta(days=days):
            raise BacktestError(
                f"--cutoffs {cutoff}: {orders_csv} holds orders from {first} to {last}; a cutoff needs orders on or "
                f"before it and {days} days of outcomes after it (expected a day from {first} to "
                f"{last - dt.timedelta(days=days)})")
    return orders


def outcomes(orders, cutoff: dt.date) -> tuple[set[str], dict[str, dict]]:
    """(the retailer's ids with an order up to `cutoff`, per id its labels after it) from the full orders."""
    import pandas as pd

    end = pd.Timestamp(cutoff + dt.timedelta(days=1))
    known = set(orders.loc[orders.order_ts < end, "customer_id"])
    after = orders[orders.order_ts >= end]
    labels = {}
    for spec in get_config().models.specs.values():
        buyers = set(after.loc[after.order_ts < end + pd.Timedelta(days=spec.horizon_days), "customer_id"])
        bought = spec.positive == "purchase"
        labels[spec.label] = {customer: int((customer in buyers) == bought) for customer in known}
    return known, labels


def _retailer_ids(day: dt.date):
    """The trusted customers of `day` by the retailer's id (external_id, else the customer id)."""
    customers = sqljobs.read_partition(paths.trusted("customers", day)).to_pandas()
    return customers.assign(user_id=customers["external_id"].fillna(customers["customer_id"].astype(str)))[
        ["customer_id", "user_id"]]


def evaluate_cutoff(day: dt.date, labels: dict[str, dict]) -> dict:
    """Per model: the champion's scores at `day`, the model trained at `day` and both baselines, against `labels`."""
    features = sqljobs.read_partition(paths.features(day)).to_pandas().merge(_retailer_ids(day), on="customer_id")
    handlers = sagemaker.load_handlers(sagemaker.upload_source_dir())
    result = {}
    for model, spec in get_config().models.specs.items():
        frame = features[features["user_id"].isin(labels[spec.label])].reset_index(drop=True)
        y = frame["user_id"].map(labels[spec.label]).to_numpy(dtype="float64")
        ties = stable_hash(frame["customer_id"], model)
        scores = sqljobs.read_partition(paths.scores(model, day, "scores")).to_pandas()
        champion = frame[["customer_id"]].merge(scores, on="customer_id", how="left")["probability"]
        if champion.isna().any():
            raise BacktestError(f"model {model}: {int(champion.isna().sum())} customer(s) with history at {day} have "
                                "no score")
        cards = registry_cards(model, day)
        trained = sagemaker.load_model(handlers, cards["trained"]["trained_artifact"])
        last_train_day = manifests(model, day)["train"]["as_of"][-1]
        train = read_snapshots(day, [dt.date.fromisoformat(last_train_day)])
        fitted = registry.fit_baselines(handlers, model, train[train[spec.label].notna()])
        predicted = {"champion": champion.to_numpy(dtype="float64"),
                     "trained": registry.predict(trained, frame),
                     **{kind: registry.predict(handlers.Propensity(fitted[kind]), frame) for kind in fitted}}
        result[model] = {name: {k: finite(v) for k, v in evaluate(y, p, ties).items() if k in SHOWN}
                         for name, p in predicted.items()}
        result[model]["champion"]["version"] = cards["champion"]["version"]
        result[model]["champion"]["kind"] = cards["champion"].get("kind", "xgboost")
        result[model]["trained"]["version"] = cards["trained"]["version"]
        result[model]["trained"]["promoted"] = cards["trained"]["promoted"]
    return result


def registry_cards(model: str, day: dt.date) -> dict:
    """The champion that scored `day` and the xgboost version trained at `day`."""
    folder = paths.registry(model)
    cards = [storage.read_json(storage.resolve(p) / "card.json") for p in sorted(folder.iterdir())
             if p.is_dir() and storage.is_committed(p)]
    trained = [c for c in cards if c.get("kind") == "xgboost" and c["training_partition"] == day.isoformat()]
    champion = registry.champion(model)
    if not trained or champion is None:
        raise BacktestError(f"model {model}: no version trained at {day} in {storage.url_of(folder)}")
    return {"trained": trained[-1], "champion": champion}


def replay(first: dt.date, last: dt.date, dags: tuple[str, ...] = REPLAYED) -> None:
    """Run `dags` for each day from `first` to `last` with the source clock at the day's end (local target)."""
    if get_config().target != "local":
        raise BacktestError("replay runs on the local target only: on aws, DMS reads the store DB as it is now")
    if last < first:
        raise BacktestError(f"replay --from {first} --to {last}: expected --to on or after --from")
    engine = source.connect(get_config().source.sqlalchemy_url)
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        print(f"replay {day} ({offset + 1} of {(last - first).days + 1})", flush=True)
        with engine.begin() as conn:
            source.set_clock(conn, dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
        for dag_id in dags:
            demo._run_dag(dag_id, day)


def run(orders_csv: str, cutoffs: list[dt.date], root: str | None = None, customers_csv: str | None = None,
        **layout) -> dict:
    """Run every cutoff, evaluate it, and write the summary and its HTML report; returns the summary. `layout`:
    import_csv's date_format, delimiter and columns."""
    from crosschannel.core.config import get_config as config

    base = Path(root or BUNDLE_ROOT / ".data" / "backtest").resolve()
    started, summary = time.monotonic(), {"orders": str(orders_csv), "customers": customers_csv, "cutoffs": {}}
    orders = read_orders(orders_csv, cutoffs, **layout)
    saved = dict(os.environ)
    try:
        for cutoff in sorted(cutoffs):
            began = time.monotonic()
            folder = base / f"cutoff-{cutoff}"  # no "=": the storage layer would escape it in the root
            if folder.exists():
                raise BacktestError(f"{folder} exists: a backtest writes each cutoff into a new folder (remove it "
                                    "or pass another --root)")
            print(f"cutoff {cutoff}: importing the history up to it into {folder}", flush=True)
            os.environ.update(_environment(folder, []))
            config.cache_clear()
            known, labels = outcomes(orders, cutoff)
            imported = byod.import_csv(orders_csv, customers_csv, before=cutoff + dt.timedelta(days=1), **layout)
            os.environ.update(_environment(folder, imported["sources_absent"]))
            config.cache_clear()
            for dag_id in DAGS:
                demo._run_dag(dag_id, cutoff)
            figures = evaluate_cutoff(cutoff, labels)
            summary["cutoffs"][cutoff.isoformat()] = {
                "customers": len(known), "orders_imported": imported["orders"],
                "sources_absent": imported["sources_absent"], "models": figures,
                "seconds": round(time.monotonic() - began, 1), "root": str(folder)}
            for model, found in figures.items():
                auc = {name: _shown(scorer["auc"], ".4f") for name, scorer in found.items()}
                print(f"  {model:<11} AUC  trained {auc['trained']}  champion {auc['champion']} "
                      f"({found['champion']['version']})  RFM {auc['rfm']}  BG/NBD {auc['bgnbd']}", flush=True)
    finally:  # the caller's configuration again
        os.environ.clear()
        os.environ.update(saved)
        config.cache_clear()
    summary["seconds"] = round(time.monotonic() - started, 1)
    out = base / "reports" / "backtest"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    (out / "summary.html").write_text(render(summary))
    print(f"backtest: {len(cutoffs)} cutoff(s) in {summary['seconds']:.0f} s; {out / 'summary.json'}", flush=True)
    return summary


def render(summary: dict) -> str:
    """The summary as one HTML table per model: per cutoff, each scorer's AUC, top-decile lift and calibration."""
    names = {"trained": "model trained at the cutoff", "champion": "champion", "rfm": "RFM", "bgnbd": "BG/NBD"}
    models = sorted({m for c in summary["cutoffs"].values() for m in c["models"]})
    parts = [f"<h1>Backtest of {html.escape(summary['orders'])}</h1>"]
    for model in models:
        rows = []
        for cutoff, found in summary["cutoffs"].items():
            figures = found["models"][model]
            cells = "".join(f"<td>{_shown(figures[n]['auc'], '.4f')}</td>"
                            f"<td>{_shown(figures[n]['top_decile_lift'], '.2f')}</td>"
                            f"<td>{_shown(figures[n]['calibration_error'], '.3f')}</td>" for n in names)
            rows.append(f"<tr><td>{cutoff}</td><td>{figures['trained']['rows']}</td>{cells}</tr>")
        head = "".join(f"<th colspan=3>{html.escape(label)}</th>" for label in names.values())
        parts.append(f"<h2>{html.escape(model)}</h2><table border=1><tr><th>cutoff</th><th>customers</th>{head}</tr>"
                     "<tr><th></th><th></th>" + "<th>AUC</th><th>lift@10%</th><th>calibration</th>" * len(names)
                     + "</tr>" + "".join(rows) + "</table>")
    return "<!doctype html><meta charset=utf-8><title>Backtest</title>" + "".join(parts) + "\n"


def _shown(value: float | None, spec: str) -> str:
    """A figure as text; n/a where it is undefined (an AUC when every outcome is the same)."""
    return "n/a" if value is None else format(value, spec)
