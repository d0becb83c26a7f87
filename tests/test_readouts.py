"""Campaign readouts (issue 17): the statistics hold their promises on simulated groups (the 95% interval covers the
true uplift at about the nominal rate; a null campaign is called significant no more often than that), the
generator's planted effect is read out against its truth, and the stage runs from committed partitions to its
report, the same SQL on DuckDB and Spark."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import ConfigError, Generator, get_config, load_config
from crosschannel.stages.activation import audiences, outbox
from crosschannel.stages.readouts import report, sends, stats, tasks

SETTINGS = {"confidence": 0.95, "target_power": 0.8, "min_relative_uplift": 0.1}
REPLICATIONS = 1000


def _group(orders: np.ndarray, revenue: np.ndarray) -> stats.Group:
    return stats.Group(members=int(orders.size), converters=int((orders > 0).sum()), orders=float(orders.sum()),
                       orders_sq=float((orders**2).sum()), revenue=float(revenue.sum()),
                       revenue_sq=float((revenue**2).sum()))


def _experiment(seed: int, change: float, members: int = 2000, horizon: int = 14) -> tuple[dict, dict]:
    """One send to an audience of customers with gamma-distributed daily purchase rates: treatment members buy at
    (1 + change) times their rate for the window (as the generator's campaign effect), a stable 10% are control.
    The readout, and the truth on the treated (expected conversion and orders with and without the send)."""
    rng = np.random.default_rng([seed, 17])
    lam = np.clip(rng.gamma(1.5, 1 / 60, members), 0.002, 0.25)
    control = rng.random(members) < 0.1
    q0, q1 = 1 - np.exp(-lam), 1 - np.exp(-lam * (1 + change))
    q = np.where(control, q0, q1)
    orders = rng.binomial(horizon, q)
    revenue = np.array([rng.lognormal(3.5, 0.6, n).sum() for n in orders])
    treated = ~control
    truth = {"uplift": float(((1 - (1 - q1) ** horizon) - (1 - (1 - q0) ** horizon))[treated].mean()),
             "orders": float((horizon * (q1 - q0))[treated].mean())}
    return stats.readout(_group(orders[treated], revenue[treated]), _group(orders[control], revenue[control]),
                         **SETTINGS), truth


def _covers(interval: list[float], value: float) -> bool:
    return interval[0] <= value <= interval[1]


def test_the_interval_covers_the_true_uplift_at_about_the_nominal_rate():
    """Over 1,000 seeded sends with a real effect, the conversion (Newcombe) and orders-per-member (Welch) 95%
    intervals cover the true effect on the treated in 93% to 97% of them (3 binomial standard errors)."""
    results = [_experiment(seed, change=0.3) for seed in range(REPLICATIONS)]

    conversion = np.mean([_covers(r["conversion"]["interval"], t["uplift"]) for r, t in results])
    orders = np.mean([_covers(r["orders_per_member"]["interval"], t["orders"]) for r, t in results])

    assert 0.93 <= conversion <= 0.97, conversion
    assert 0.93 <= orders <= 0.97, orders
    assert np.mean([t["uplift"] for _, t in results]) > 0.02  # the effect is there to be covered


def test_a_campaign_without_effect_is_called_significant_no_more_than_the_nominal_rate():
    results = [_experiment(seed, change=0.0) for seed in range(REPLICATIONS)]

    assert all(t["uplift"] == 0 for _, t in results)
    false_positives = np.mean([r["significant"] for r, _ in results])
    assert false_positives <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / REPLICATIONS), false_positives
    assert false_positives > 0.02  # not an interval too wide to ever say anything


def test_the_intervals_match_published_and_reference_values():
    z = stats.z_value(0.95)
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80, method 10
    low, high = stats.newcombe(56, 70, 48, 80, z)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(3)
    a, b = rng.poisson(1.2, 40).astype(float), rng.poisson(0.8, 25).astype(float)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    _, interval = stats.welch(_group(a, a), _group(b, b), "orders", 0.95)
    assert interval == pytest.approx([reference.low, reference.high])


def test_the_power_check_flags_groups_too_small_for_the_minimum_effect():
    small = stats.readout(stats.Group(200, 20), stats.Group(20, 2), **SETTINGS)
    large = stats.readout(stats.Group(400_000, 40_000), stats.Group(40_000, 4_000), **SETTINGS)

    assert small["underpowered"] and small["power"]["power"] < 0.2
    assert not large["underpowered"] and large["power"]["power"] > 0.8
    detectable = large["power"]["detectable_uplift"]  # the uplift found with the target power, by construction
    assert stats.power(0.1, detectable, 400_000, 40_000, 0.95) == pytest.approx(0.8, abs=1e-3)
    assert stats.readout(stats.Group(50, 5), stats.Group(0, 0), **SETTINGS)["status"] == "no control members"
    everybody = stats.readout(stats.Group(1, 1), stats.Group(1, 1), **SETTINGS)  # no room above a rate of 1
    assert everybody["underpowered"] and everybody["orders_per_member"]["interval"] is None
    nobody = stats.readout(stats.Group(50, 0), stats.Group(5, 0), **SETTINGS)
    assert nobody["underpowered"] and not nobody["significant"] and nobody["conversion"]["relative_uplift"] is None


def test_the_generators_planted_effect_is_read_out_against_its_truth():
    """Through the generator: a send changes the treatment members' purchases as configured and the readout of
    the simulated orders covers the true uplift; an audience without effect has a truth of exactly 0."""
    from crosschannel.sim.retailer import Retailer

    settings = Generator(customers=20000, history_days=60, seed=11)
    retailer = Retailer.create(settings)
    for _ in range(30):
        retailer.simulate_day(with_events=False, n_stores=settings.stores)
    send_day, horizon = retailer.next_day - dt.timedelta(days=1), 14
    planted = {}
    for name, change in (("cart_abandoners", 1.0), ("in_market_category", 0.0)):
        ids, control = retailer.planted_members(name, send_day, 10)
        retailer.record_send(name, send_day, ids[~control], change, days=horizon)
        planted[name] = (ids, control)
    orders = np.zeros(retailer.a["c_lam"].size + 1000)
    revenue = np.zeros_like(orders)
    for _ in range(horizon):
        changes, _ = retailer.simulate_day(with_events=False, n_stores=settings.stores)
        bought = changes.inserts["orders"]
        np.add.at(orders, bought["customer_id"].to_numpy(), 1)
        np.add.at(revenue, bought["customer_id"].to_numpy(), bought["total"].astype(float).to_numpy())

    for name, (ids, control) in planted.items():
        truth = retailer.campaign_truth(name, send_day, horizon, ids[~control])
        result = stats.readout(_group(orders[ids[~control]], revenue[ids[~control]]),
                               _group(orders[ids[control]], revenue[ids[control]]), **SETTINGS)
        assert _covers(result["conversion"]["interval"], truth["uplift"]), (name, result["conversion"], truth)
        if name == "in_market_category":
            assert truth["uplift"] == 0 and truth["incremental_orders"] == 0
        else:
            assert truth["uplift"] > 0.03 and result["conversion"]["uplift"] > 0
            assert _covers(result["orders_per_member"]["interval"], truth["orders_uplift"])


# ---- the stage, from committed partitions

SEND, DAY = dt.date(2026, 11, 3), dt.date(2026, 11, 10)  # the 7-day readout of the send of the 3rd is due on the 10th


def _commit_members(name: str, day: dt.date, rows: list[tuple[int, str]]) -> None:
    table = pa.table({"audience": [name] * len(rows), "customer_id": pa.array([r[0] for r in rows], pa.int64()),
                      "detail": ["test"] * len(rows), "assignment": [r[1] for r in rows]})
    sqljobs.write_partition(paths.audience_members(name, day), table)


def _deliver(day: dt.date) -> None:
    outbox.write_outbox(outbox.PROFILES, day, outbox.new_attempt("test"), "upload", [],
                        {"status": "delivered", "sent": True, "delivered": True})


def _orders() -> pa.Table:
    def ts(day: int, hour: int = 12) -> dt.datetime:
        return dt.datetime(2026, 11, day, hour)

    rows = [  # customer, time, total
        (1, ts(3, 23), 99.0),   # on the send day: outside the window
        (1, ts(4, 0), 10.0), (1, ts(9), 20.0),  # treatment member 1: two orders
        (2, ts(10, 23), 5.5),   # treatment member 2: the window's last day counts
        (3, ts(11, 0), 40.0),   # after the partition day: outside
        (11, ts(5), 7.0),       # control member 11
        (99, ts(5), 1.0),       # not a member
    ]
    return pa.table({"order_id": pa.array(range(1, len(rows) + 1), pa.int64()),
                     "customer_id": pa.array([r[0] for r in rows], pa.int64()),
                     "order_ts": pa.array([r[1] for r in rows], pa.timestamp("us")),
                     "total": pa.array([Decimal(str(r[2])) for r in rows], pa.decimal128(12, 2))})


@pytest.fixture
def committed(local_env):
    """Two audiences sent on SEND (one member set each), one more built on a day that was never sent, and the
    trusted orders of DAY."""
    names = audiences.names()
    _commit_members(names[0], SEND, [(1, "treatment"), (2, "treatment"), (3, "treatment"), (4, "treatment"),
                                     (11, "control"), (12, "control")])
    _commit_members(names[1], SEND, [(1, "treatment"), (11, "control")])
    _deliver(SEND)
    _commit_members(names[0], DAY - dt.timedelta(days=14), [(1, "treatment"), (11, "control")])  # never sent
    sqljobs.write_partition(paths.trusted("orders", DAY), _orders())
    return names


def test_the_readouts_due_are_read_out_from_the_committed_partitions(committed):
    plans = tasks.plan_readouts(DAY)
    assert len(plans) == 1 and set(json.loads(plans[0]["--inputs"])) == {"orders", "members_7d"}
    sqljobs.run_local(plans[0])

    outcome = tasks.read_out(DAY, plans)

    result = report.read(DAY)
    first = next(r for r in result["readouts"] if r["audience"] == committed[0])
    assert (first["send_day"], first["horizon_days"]) == ("2026-11-03", 7)
    assert first["window"] == ["2026-11-04", "2026-11-10"]
    assert first["treatment"] == {"members": 4, "converters": 2, "conversion_rate": 0.5, "orders": 3.0,
                                  "revenue": 35.5, "orders_per_member": 0.75, "revenue_per_member": 8.875}
    assert first["control"]["converters"] == 1 and first["control"]["revenue"] == 7.0
    assert first["conversion"]["uplift"] == 0.0 and first["destinations"] == ["customer_profiles"]
    assert first["incremental"]["orders"]["estimate"] == pytest.approx(4 * (0.75 - 0.5))
    assert {(s["horizon_days"], s["status"]) for s in result["skipped"]} == {
        (14, sends.NOT_SENT), (14, sends.NOT_BUILT), (30, sends.NOT_BUILT), (7, sends.NOT_BUILT)}
    assert outcome["readouts"] == len(committed[:2]) and outcome["underpowered"] == 2
    page = storage.location(outcome["html"]).read_text()
    assert "<svg" in page and committed[0] in page and "not sent" in page


def test_a_partition_with_no_send_due_has_an_empty_readout_and_no_job(local_env):
    assert tasks.plan_readouts(DAY) == []

    outcome = tasks.read_out(DAY, [])

    assert outcome["readouts"] == 0 and report.read(DAY)["readouts"] == []
    assert tasks.send_digest(DAY, {}, notifiers=None) == {"sent": False, "reason": "no channel in readouts.digest"}


def test_the_digest_goes_through_the_alert_channels_only_when_configured(committed, monkeypatch):
    sqljobs.run_local(tasks.plan_readouts(DAY)[0])
    tasks.read_out(DAY, [{}])
    sent = []

    class Notifier:
        def __init__(self, channel, emails, subject, text):
            self.args = (channel, emails, subject, text)

        def notify(self, context):
            sent.append((*self.args, context))

    def notifiers(channels, emails, subject, text):
        return [Notifier(channel, emails, subject, text) for channel in channels]

    monkeypatch.setenv("CROSSCHANNEL__READOUTS__DIGEST", "[smtp, slack]")
    get_config.cache_clear()
    with pytest.raises(ConfigError, match=r"readouts\.digest: smtp is chosen but alerts\.stakeholder_emails"):
        tasks.send_digest(DAY, {}, notifiers)

    monkeypatch.setenv("CROSSCHANNEL__ALERTS__STAKEHOLDER_EMAILS", "[marketing@example.com]")
    get_config.cache_clear()
    outcome = tasks.send_digest(DAY, {"run_id": "r"}, notifiers)

    assert outcome["sent"] and [s[0] for s in sent] == ["smtp", "slack"]
    _, emails, subject, text, context = sent[0]
    assert emails == ("marketing@example.com",) and context == {"run_id": "r"}
    assert subject == "[crosschannel] campaign readouts for 2026-11-10: 2 due, 0 significant"
    assert f"{committed[0]}, sent 2026-11-03, after 7 days: conversion 50.00% (4 treated)" in text


def test_the_readout_sql_is_equal_on_duckdb_and_spark(committed, spark):
    plan = tasks.plan_readouts(DAY)[0]
    sql = storage.location(plan["--sql_path"]).read_text()
    inputs = {view: sqljobs.read_input(view, spec) for view, spec in json.loads(plan["--inputs"]).items()}

    def rows(table):
        return sorted(table.to_pylist(), key=lambda r: (r["audience"], r["assignment"]))

    on_duckdb = rows(engines.run_duckdb(sql, inputs))
    assert len(on_duckdb) == 4
    assert rows(engines.run_spark(spark, sql, inputs)) == on_duckdb


def test_the_readouts_configuration_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("readouts: {effect: {hazard_change: {win_back: -1}}, horizons_days: [0, 7]}\n")
    with pytest.raises(ConfigError) as error:
        load_config(bad, environ={})
    assert "readouts.effect.hazard_change: win_back: -1.0 would make the purchase rate zero" in str(error.value)
    assert "readouts.horizons_days: [0, 7]: expected one or more horizons of 1 to 365 days" in str(error.value)
    assert load_config(environ={}).readouts.horizons_days == (7, 14, 30)


def _commit_recommendations(day: dt.date, lists: dict[int, list[int]]) -> None:
    from crosschannel.stages.activation import recommended

    rows = [(customer, rank, product) for customer, products in lists.items()
            for rank, product in enumerate(products, start=1)]
    sqljobs.write_partition(recommended.members_dir(day), pa.table({
        "customer_id": pa.array([r[0] for r in rows], pa.int64()), "rank": pa.array([r[1] for r in rows], pa.int64()),
        "product_id": pa.array([r[2] for r in rows], pa.int64()), "name": [f"item {r[2]}" for r in rows],
        "category": ["toys"] * len(rows), "price": [9.5] * len(rows), "score": [None] * len(rows)}))


def test_bought_a_recommended_item_is_read_out_for_treatment_and_control(committed, spark):
    """The send day's lists (control members' too): a member with a list who bought one of its items in the window
    counts, a purchase outside the window or of another item does not, and a control member treated in another
    audience that day (3 in the second audience: it received its list) counts in neither; DuckDB and Spark agree."""
    _commit_members(committed[1], SEND, [(1, "treatment"), (11, "control"), (3, "control")])
    _commit_recommendations(SEND, {1: [50, 51], 2: [52], 3: [53], 11: [80], 12: [81]})  # member 4 has no list
    lines = [(1, 50), (2, 50), (3, 60), (4, 70), (6, 80)]  # order 1 (member 1, on the send day) is outside
    sqljobs.write_partition(paths.trusted("order_lines", DAY), pa.table({
        "order_line_id": pa.array(range(1, len(lines) + 1), pa.int64()),
        "order_id": pa.array([r[0] for r in lines], pa.int64()), "product_id": pa.array([r[1] for r in lines],
                                                                                        pa.int64())}))
    (plan,) = tasks.plan_readouts(DAY)
    assert set(json.loads(plan["--inputs"])) == {"orders", "order_lines", "members_7d", "recommended_7d"}
    sql = storage.location(plan["--sql_path"]).read_text()
    inputs = {view: sqljobs.read_input(view, spec) for view, spec in json.loads(plan["--inputs"]).items()}

    def rows(table):
        return sorted(table.to_pylist(), key=lambda r: (r["audience"], r["assignment"]))

    on_duckdb = rows(engines.run_duckdb(sql, inputs))
    assert rows(engines.run_spark(spark, sql, inputs)) == on_duckdb
    sqljobs.run_local(plan)
    tasks.read_out(DAY, [plan])

    by_audience = {r["audience"]: r["recommended"] for r in report.read(DAY)["readouts"]}
    first = by_audience[committed[0]]
    assert first["treatment"] == {"listed": 3, "bought": 1, "rate": pytest.approx(1 / 3)}
    assert first["control"] == {"listed": 2, "bought": 1, "rate": 0.5}
    assert first["uplift"] == pytest.approx(1 / 3 - 0.5, abs=1e-6) and not first["significant"]
    assert by_audience[committed[1]]["treatment"] == {"listed": 1, "bought": 1, "rate": 1.0}
    assert by_audience[committed[1]]["control"] == {"listed": 1, "bought": 1, "rate": 1.0}  # 11 only, not 3
    assert "33.33% of 3 / 50.00% of 2" in paths.readouts(DAY, "readouts.html").read_text()


def test_a_send_without_lists_has_no_recommendation_readout(committed):
    (plan,) = tasks.plan_readouts(DAY)
    sqljobs.run_local(plan)
    tasks.read_out(DAY, [plan])

    assert [r["recommended"] for r in report.read(DAY)["readouts"]] == [None, None]
