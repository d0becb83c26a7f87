"""Declared sources (config `sources`): a retailer with orders only runs the whole chain, and whatever needs an absent
source is skipped with its reason, never failed or filled with placeholders."""

from __future__ import annotations

import datetime as dt
import io
import json
import os

import numpy as np
import pandas as pd
import pytest

from crosschannel.core import gates, paths, sqljobs, storage
from crosschannel.core.config import ConfigError, get_config, load_config
from crosschannel.core.source_settings import Sources
from tests.conftest import AWS_ENV, configure, run_dag

ORDERS_ONLY = {f"CROSSCHANNEL__SOURCES__{name}": "false" for name in ("EVENTS", "PRODUCTS", "STORES", "CONTACTS")}
DAY = dt.date(2026, 11, 4)


def test_a_missing_source_is_named_with_what_needs_it():
    sources = Sources(events=False, stores=False)

    assert sources.missing(["products"], "x") is None
    assert sources.missing(["events", "stores"], "audience a") == (
        "audience a needs web or app events from Segment and physical stores, and the retailer has none "
        "(sources.events, sources.stores: false)")
    with pytest.raises(ValueError, match=r"audience b: needs unknown source\(s\) web \(expected events, products"):
        sources.missing(["web"], "audience b")


def test_features_and_destinations_follow_the_declared_sources(tmp_path, monkeypatch):
    cfg = configure(monkeypatch, tmp_path, CROSSCHANNEL__SOURCES__STORES="false",
                    CROSSCHANNEL__SOURCES__PRODUCTS="false")

    used, skipped = cfg.features()

    assert set(skipped) == {"store_share_365d", "top_category_share_365d"} and not set(skipped) & set(used)
    assert used == [f for f in cfg.models.features if f not in skipped]
    assert "sources.stores: false" in skipped["store_share_365d"]
    assert not cfg.runs("personalize") and not cfg.runs("recommendations")
    assert cfg.runs("pinpoint") and cfg.runs("customer_profiles") and cfg.runs("segment")


def test_the_aws_target_asks_no_personalize_arns_of_a_retailer_without_products(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("{}")
    arns = [k for k in AWS_ENV if k.startswith("CROSSCHANNEL__ACTIVATION__PERSONALIZE__")]
    env = {k: v for k, v in AWS_ENV.items() if k not in arns}

    with pytest.raises(ConfigError, match=r"activation\.personalize\.role_arn: required"):
        load_config(path, env)
    assert not load_config(path, {**env, "CROSSCHANNEL__SOURCES__PRODUCTS": "false"}).runs("personalize")


def test_an_expectation_on_an_absent_source_is_skipped_with_its_reason(tmp_path, monkeypatch):
    configure(monkeypatch, tmp_path, CROSSCHANNEL__SOURCES__EVENTS="false")
    suite = {"name": "s", "meta": {}, "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "last_seen_ts"},
         "meta": {"severity": "critical", "needs": ["events"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}, "meta": {}}]}

    kept, skipped = gates.declared(suite, suite["expectations"])
    everything, none = gates.declared({**suite, "meta": {"needs": ["events"]}}, suite["expectations"])

    assert kept == suite["expectations"][1:]
    assert skipped == [{"expectation": "expect_column_max_to_be_between", "column": "last_seen_ts", "reason":
                        "s: expect_column_max_to_be_between on last_seen_ts needs web or app events from Segment, "
                        "and the retailer has none (sources.events: false)"}]
    assert everything == [] and [s["column"] for s in none] == ["last_seen_ts", "customer_id"]


def test_a_day_without_segment_files_names_both_ways_out(tmp_path, monkeypatch):
    from crosschannel.stages.ingest import segment

    configure(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"segment\.allow_empty_day .* or sources\.events to false"):
        segment.land_day(DAY)

    configure(monkeypatch, tmp_path, CROSSCHANNEL__SOURCES__EVENTS="false")
    manifest = segment.land_day(DAY)

    assert manifest["messages"] == 0 and manifest["files"] == []
    assert "sources.events: false" in manifest["skipped"]
    assert storage.is_committed(paths.segment_landing(DAY))


def orders_only_csv(path, customers: int = 300, seed: int = 3) -> str:
    """A real-looking orders-only history: customer (a text id, as store systems write them), time, amount,
    quantity; 18 months, purchase rates that vary by customer and lapse."""
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2025-05-01"), pd.Timestamp(DAY + dt.timedelta(days=1))
    rows = []
    for customer in range(1, customers + 1):
        first = start + pd.Timedelta(days=int(rng.integers(0, 400)))
        lapse = first + pd.Timedelta(days=int(rng.exponential(300)))
        t, rate = first, rng.gamma(2.0, 1 / 40)
        while t < min(lapse, end):
            rows.append((f"C{customer:05d}", t + pd.Timedelta(minutes=int(rng.integers(480, 1260))),
                         round(float(rng.lognormal(3.3, 0.5)), 2), int(rng.integers(1, 4))))
            t += pd.Timedelta(days=max(1, int(rng.exponential(1 / rate))))
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "amount", "quantity"])
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return str(path)


@pytest.fixture(scope="module")
def orders_only_chain(tmp_path_factory, airflow_db):
    """An orders-only retailer with text ids imported as the README says, every source but orders declared absent,
    its history replayed from the day before its last (`replay`: a full load of what was committed by then, then
    the last day's orders as changes), and the rest of the chain run for the last day."""
    from crosschannel.__main__ import main
    from crosschannel.sim import byod

    tmp_path = tmp_path_factory.mktemp("orders_only")
    with pytest.MonkeyPatch.context() as monkeypatch:
        configure(monkeypatch, tmp_path, **ORDERS_ONLY)
        orders_csv = orders_only_csv(tmp_path / "orders.csv")
        imported = byod.import_csv(orders_csv)
        main(["replay", "--from", str(DAY - dt.timedelta(days=1)), "--to", str(DAY)])
        states = {dag_id: run_dag(dag_id, DAY.isoformat()).state for dag_id in (
            "propensity_training", "propensity_scoring", "audience_activation")}
        yield imported, states, pd.read_csv(orders_csv, parse_dates=["order_date"])
    get_config.cache_clear()


def report(name: str, *parts: str) -> dict:
    return json.loads(storage.resolve(paths.reports(DAY, *parts, name)).read_text())


def test_an_orders_only_retailer_runs_the_whole_chain(orders_only_chain):
    imported, states, _ = orders_only_chain

    assert imported["sources_absent"] == ["events", "products", "stores", "contacts"]
    assert set(states.values()) == {"success"}, states


def test_a_replayed_day_is_the_source_as_it_was_that_day(orders_only_chain):
    *_, history = orders_only_chain
    manifest = storage.read_json(storage.resolve(paths.dms_manifest(DAY)) / "manifest.json")

    for day in (DAY - dt.timedelta(days=1), DAY):  # a full load, then a day of changes
        orders = sqljobs.read_partition(paths.trusted("orders", day)).to_pandas()
        then = history[history.order_date < pd.Timestamp(day + dt.timedelta(days=1))]
        assert len(orders) == len(then.drop_duplicates(["customer_id", "order_date"])), day
        assert orders.order_ts.max() == then.order_date.max(), day
    assert manifest["tables"]["orders"]["cdc_ops"]["I"] == (history.order_date.dt.date == DAY).sum() > 0


def test_the_retailers_own_ids_are_what_leaves(orders_only_chain):
    from crosschannel.stages.activation import profiles

    summary = report("summary.json", "activation")
    profile = profiles.read_profiles(DAY)
    segment = [json.loads(line) for path in storage.location(summary["destinations"]["segment"]["location"]).rglob(
        "*.jsonl") for line in path.read_text().splitlines()]
    upload = next(storage.location(summary["destinations"]["customer_profiles"]["location"]).rglob("*.csv"))

    assert profile["user_id"].str.fullmatch(r"C\d{5}").all() and profile["customer_id"].is_unique
    assert len(segment) == summary["destinations"]["segment"]["messages"]
    assert {m["user_id"] for m in segment} == set(profile["user_id"])
    uploaded = pd.read_csv(io.StringIO(upload.read_text()), dtype=str)
    assert set(uploaded["customer_id"]) == set(profile["user_id"])
    assert (uploaded["audience_cart_abandoners"] == "false").all()  # the same fields, whatever the sources


def test_what_needs_an_absent_source_says_why_it_was_skipped(orders_only_chain):
    gate = report("trusted_customer_360.json", "gates")
    summary = report("summary.json", "activation")
    manifest = storage.read_json(storage.resolve(paths.dataset("churn", DAY) / "train") / "manifest.json")

    assert gate["success"] and [s["column"] for s in gate["skipped"]] == ["last_seen_ts"]
    assert set(summary["audiences_skipped"]) == {"cart_abandoners", "in_market_category"}
    assert "sources.events" in summary["audiences_skipped"]["cart_abandoners"]
    assert set(summary["audiences"]) == {"high_value", "repurchase_lookalike", "win_back"}
    assert "sources.products: false" in summary["destinations"]["personalize"]["skipped"]
    assert "sources.contacts: false" in summary["destinations"]["pinpoint"]["skipped"]
    assert summary["destinations"]["segment"]["messages"] > 0 and summary["recommendations"] == {}
    assert set(manifest["features_skipped"]) == {"store_share_365d", "top_category_share_365d"}
    assert not set(manifest["features_skipped"]) & set(manifest["features"])


def test_a_backtest_replays_the_history_up_to_each_cutoff_and_scores_what_came_after(tmp_path, monkeypatch,
                                                                                      airflow_db):
    """`backtest`: the source as it was at the cutoff (nothing later reaches the trusted zone or the models), the
    DAGs run for the cutoff, and every model's champion, trained model and both baselines scored against the
    outcomes after it in the full file."""
    import pyarrow.compute as pc

    from crosschannel.sim import backtest

    configure(monkeypatch, tmp_path, CROSSCHANNEL__MODELS__MAX_TRIALS="2")
    orders_csv = orders_only_csv(tmp_path / "orders.csv")
    cutoff = dt.date(2026, 6, 30)
    history = pd.read_csv(orders_csv, parse_dates=["order_date"])
    before = history[history.order_date < pd.Timestamp(cutoff + dt.timedelta(days=1))]
    last = history.order_date.max().date()
    with pytest.raises(backtest.BacktestError, match=rf"--cutoffs {last - dt.timedelta(days=30)}: .* holds orders "
                                                     rf"from .* to {last}; a cutoff needs .* 90 days of outcomes"):
        backtest.run(orders_csv, [cutoff, last - dt.timedelta(days=30)], str(tmp_path / "late"))
    assert not (tmp_path / "late").exists()  # refused before anything ran

    summary = backtest.run(orders_csv, [cutoff], str(tmp_path / "bt"))

    assert os.environ["CROSSCHANNEL__STORAGE__ROOT"] == str(tmp_path / "root")  # the caller's configuration is back
    found = summary["cutoffs"][cutoff.isoformat()]
    assert json.loads((tmp_path / "bt" / "reports" / "backtest" / "summary.json").read_text()) == summary
    assert "<h2>churn</h2>" in (tmp_path / "bt" / "reports" / "backtest" / "summary.html").read_text()
    undefined = json.loads(json.dumps(summary).replace('"auc": 0.', '"auc": null, "was": 0.'))
    assert "<td>n/a</td>" in backtest.render(undefined)  # an AUC with one class only
    assert found["customers"] == before.customer_id.nunique()
    assert (tmp_path / "bt" / f"cutoff-{cutoff}" / "root" / "trusted").is_dir()  # where the summary says
    assert found["sources_absent"] == ["events", "products", "stores", "contacts"]
    for model, scored in found["models"].items():
        assert set(scored) == {"champion", "trained", "rfm", "bgnbd"}, model
        assert all(s["rows"] == found["customers"] and 0.6 < s["auc"] <= 1 for s in scored.values()), (model, scored)
    # the trusted zone of the cutoff holds the source as it was then: every order up to it, none after
    monkeypatch.setenv("CROSSCHANNEL__STORAGE__ROOT", found["root"] + "/root")
    get_config.cache_clear()
    orders = sqljobs.read_partition(paths.trusted("orders", cutoff))
    assert orders.num_rows == len(before.drop_duplicates(["customer_id", "order_date"]))
    assert pc.max(orders["order_ts"]).as_py() < dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time())
