"""The synthetic retailer: deterministic, its ground truth is the real probability, its events follow the spec."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json

import numpy as np
import pytest
import sqlalchemy as sa

from crosschannel.core import segment_files, source, storage
from crosschannel.core.config import Generator
from crosschannel.sim import generator
from crosschannel.sim.retailer import Retailer, no_purchase_probability
from crosschannel.sim.timeline import day_ordinal
from crosschannel.stages.ingest import segment as segment_check


def _settings(**overrides) -> Generator:
    values = {"seed": 7, "customers": 3000, "stores": 5, "products": 60, "history_days": 30,
              "event_history_days": 1, "start_partition": "2026-11-01", **overrides}
    return Generator(**values)


def _db_digest(url: str) -> str:
    digest = hashlib.sha256()
    engine = source.connect(url, create=True)
    with engine.connect() as conn:
        for tbl in (*source.RETAIL_TABLES, source.cdc_log):
            for row in conn.execute(sa.select(tbl).order_by(*tbl.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return digest.hexdigest()


def _files_digest(root) -> dict[str, str]:
    return {storage.relative(p, root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*.gz")}


def test_same_seed_gives_the_same_retailer_however_the_days_are_split(tmp_path, monkeypatch):
    from tests.conftest import configure

    results = []
    for run, split in (("a", [2]), ("b", [1, 1])):
        cfg = configure(monkeypatch, tmp_path / run, CROSSCHANNEL__GENERATOR__CUSTOMERS="300",
                        CROSSCHANNEL__GENERATOR__HISTORY_DAYS="40")
        generator.generate(cfg.generator)
        for days in split:
            generator.advance(days)
        results.append((_db_digest(cfg.source.sqlalchemy_url),
                        _files_digest(storage.location(cfg.segment.logs_url))))
    assert results[0] == results[1]
    assert len(results[0][1]) == 4  # two history days with events, two live days


def test_generate_refuses_to_overwrite_a_populated_source(local_env):
    generator.generate(local_env.generator)

    with pytest.raises(RuntimeError, match="already holds customers: pass --force"):
        generator.generate(local_env.generator)


def test_no_purchase_probability_matches_a_monte_carlo_of_the_process():
    rng = np.random.default_rng(1)
    lam, hazard, days, n = 0.05, 0.01, 30, 200_000
    lapse_day = rng.geometric(hazard, n)  # the day (1-based) on which the customer lapses
    buys = rng.random((n, days)) < 1 - np.exp(-lam)
    alive_on = np.arange(1, days + 1)[None, :] < lapse_day[:, None]
    simulated = 1 - (buys & alive_on).any(axis=1).mean()

    exact = no_purchase_probability(np.array([lam]), np.array([hazard]), np.array([True]), days)[0]

    assert simulated == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / n))
    assert no_purchase_probability(np.array([lam]), np.array([hazard]), np.array([False]), days)[0] == 1


def test_truth_is_calibrated_and_informative_against_what_customers_then_do():
    settings = _settings()
    retailer = Retailer.create(settings)
    while retailer.next_day < dt.date(2026, 11, 1):
        retailer.simulate_day(with_events=False, n_stores=settings.stores)
    as_of = retailer.next_day - dt.timedelta(days=1)
    truth = retailer.truth(as_of).set_index("customer_id")
    bought: set[int] = set()
    for _ in range(30):
        changes, _ = retailer.simulate_day(with_events=False, n_stores=settings.stores)
        bought |= set(changes.inserts["orders"]["customer_id"].tolist())
    actual = truth.index.isin(list(bought)).astype(float)
    predicted = truth["p_repurchase_30d"].to_numpy()

    standard_error = np.sqrt((predicted * (1 - predicted)).sum()) / len(predicted)
    assert actual.mean() == pytest.approx(predicted.mean(), abs=4 * standard_error)
    positives, negatives = predicted[actual == 1], predicted[actual == 0]
    auc = (positives[:, None] > negatives[None, :]).mean()
    assert auc > 0.75
    assert not truth.loc[~truth["alive"], "p_repurchase_30d"].any()


def test_lapsed_customers_never_buy():
    settings = _settings(customers=1000)
    retailer = Retailer.create(settings)
    for _ in range(20):
        d = day_ordinal(retailer.next_day)
        changes, _ = retailer.simulate_day(with_events=False, n_stores=settings.stores)
        buyers = changes.inserts["orders"]["customer_id"].to_numpy()
        assert (retailer.a["c_lapse"][buyers - 1] > d).all()


def test_events_follow_segment_ecommerce_spec_and_match_online_orders():
    settings = _settings(customers=500)
    retailer = Retailer.create(settings)
    changes, events = retailer.simulate_day(with_events=True, n_stores=settings.stores)
    day = dt.date.fromisoformat(settings.start_partition) - dt.timedelta(days=settings.history_days)

    for event in events:
        assert segment_check.check_message(json.dumps(event).encode(), day) in {
            ("identify", "")} | {("track", name) for name in segment_files.ECOMMERCE_EVENTS}
    completed = {e["properties"]["order_id"] for e in events if e.get("event") == "Order Completed"}
    orders = changes.inserts["orders"]
    assert completed == {str(i) for i in orders.loc[orders["channel"] != "store", "order_id"]}
    for event in events:
        if event.get("event") == "Order Completed":
            assert event["userId"] is not None  # a checkout always identifies the buyer
    assert any(e["userId"] is None for e in events)  # anonymous browsing exists, for identity stitching


def test_segment_files_are_written_in_the_destination_layout(tmp_path):
    from crosschannel.core.storage import location

    logs = location(tmp_path.as_uri())
    day = dt.date(2026, 11, 1)
    events = [{"type": "identify", "messageId": f"m{i}", "userId": "1", "anonymousId": "a",
               "timestamp": "2026-11-01T10:00:00.000Z", "receivedAt": f"2026-11-01T10:00:0{i}.000Z"}
              for i in range(3)]

    names = segment_files.write_day(logs, "web", day, events)

    folder = tmp_path / "web" / "1793491200000"
    assert names == ["1793491200000.0000.gz"] and (folder / names[0]).exists()
    lines = gzip.decompress((folder / names[0]).read_bytes()).decode().splitlines()
    assert [json.loads(line)["messageId"] for line in lines] == ["m0", "m1", "m2"]


def test_generate_and_advance_on_postgresql(pg_engine, tmp_path, monkeypatch):
    """The PostgreSQL paths: COPY for the history, triggers for a live day, the local DMS full load."""
    from crosschannel.local.dms_task import LocalReplicationTask
    from crosschannel.stages.ingest.landing import check_landing
    from tests.conftest import configure

    url = pg_engine.url.render_as_string(hide_password=False)
    cfg = configure(monkeypatch, tmp_path, CROSSCHANNEL__SOURCE__URL=url, CROSSCHANNEL__GENERATOR__CUSTOMERS="300",
                    CROSSCHANNEL__GENERATOR__HISTORY_DAYS="30")

    history = generator.generate(cfg.generator)
    (day,) = generator.advance(1)
    run = LocalReplicationTask().start("start-replication", dt.date(2026, 11, 1))
    manifest = check_landing(dt.date(2026, 11, 1), "start-replication")

    with pg_engine.connect() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in source.RETAIL_TABLES}
        logged = conn.execute(sa.select(source.cdc_log.c.table_name, source.cdc_log.c.op, sa.func.count())
                              .group_by(source.cdc_log.c.table_name, source.cdc_log.c.op)).all()
    assert history["rows"]["orders"] > 0
    assert {(t, op): n for t, op, n in logged} == {
        (t, op): n for t, ops in day["changes"].items() for op, n in ops.items() if n}
    assert {name: entry["full_load_rows"] for name, entry in manifest["tables"].items()} == counts
    assert run["status"] == "stopped"
