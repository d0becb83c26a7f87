"""include/sql/audiences/*.sql through audience_members.sql: the members each audience's rule selects, equal on
DuckDB and Spark 3.5, with a hold-out assignment that matches its Python twin and stays stable across days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from crosschannel.core import engines
from crosschannel.core.config import get_config
from crosschannel.stages.activation import audiences

DAY = dt.date(2026, 11, 10)


def _ts(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour)


def _inputs() -> dict[str, pa.Table]:
    ids = list(range(1, 21))
    scores = pa.table({  # churn decile 10 for 1-4, repurchase decile 10 for 5-6
        "customer_id": pa.array(ids + ids, pa.int64()),
        "model": pa.array(["churn"] * 20 + ["repurchase"] * 20),
        "decile": pa.array([10, 10, 9, 10] + [3] * 16 + [1] * 4 + [10, 10] + [2] * 14, pa.int64()),
        "probability": pa.array([0.5] * 40, pa.float64()),
    })
    features = pa.table({  # customer 2 ordered recently: not lapsed; 7-20 are active buyers for the RFM tiers
        "customer_id": pa.array(ids, pa.int64()),
        "recency_days": pa.array([90, 10, 61, 59] + [5] * 2 + list(range(1, 15)), pa.int64()),
        "frequency_365d": pa.array([Decimal(n) for n in [1, 5, 1, 1, 0, 0, *range(14, 0, -1)]],
                                   pa.decimal128(38, 0)),
        "monetary_365d": pa.array([Decimal(n * 10) for n in [1, 5, 1, 1, 0, 0, *range(14, 0, -1)]],
                                  pa.decimal128(14, 2)),
    })
    orders = pa.table({
        "order_id": pa.array([1, 2, 3], pa.int64()),
        "customer_id": pa.array([8, 9, 10], pa.int64()),
        "order_ts": pa.array([_ts(9, 18), _ts(8), _ts(5)], pa.timestamp("us")),
    })
    order_lines = pa.table({"order_id": pa.array([3], pa.int64()), "product_id": pa.array([100], pa.int64())})
    products = pa.table({"product_id": pa.array([100, 200], pa.int64()), "category": pa.array(["shoes", "bags"])})
    events = [  # event_name, customer_id, event_ts, category
        ("Product Added", 7, _ts(9), None),  # no order since: abandoned
        ("Product Added", 8, _ts(9, 10), None),  # ordered at 18:00 that day: not abandoned
        ("Product Added", 9, _ts(9), None),  # ordered on the 8th, before the cart: abandoned
        ("Product Added", 11, _ts(2), None),  # 8 days before the end of the 10th: outside 7 days
        ("Product Added", 99, _ts(9), None),  # not in the day's features: never a member
        *[("Product Viewed", 10, _ts(d), "shoes") for d in (6, 7, 8)],  # bought shoes on the 5th: not in-market
        *[("Product Viewed", 12, _ts(d), "bags") for d in (6, 7, 8)],
        *[("Product Viewed", 12, _ts(d), "shoes") for d in (6, 7, 8)],  # tie with bags: bags by name
        *[("Product Viewed", 13, _ts(d), "bags") for d in (6, 7)],  # two views only
    ]
    columns = list(zip(*events, strict=True))
    events_table = pa.table({
        "event_name": pa.array(columns[0]), "customer_id": pa.array(columns[1], pa.int64()),
        "event_ts": pa.array(columns[2], pa.timestamp("us")), "category": pa.array(columns[3], pa.string()),
    })
    return {"scores": scores, "features": features, "orders": orders, "order_lines": order_lines,
            "products": products, "events": events_table, "customers": pa.table({"customer_id": pa.array(ids)})}


def _members(audience: str, runner) -> dict[int, dict]:
    return {row["customer_id"]: row for row in runner(audiences.members_sql(audience, DAY), _inputs()).to_pylist()}


EXPECTED = {
    "win_back": {1, 3},  # churn deciles 9-10 and 60+ days since the last order
    "repurchase_lookalike": {5, 6},
    "cart_abandoners": {7, 9},
    "in_market_category": {12},
}


@pytest.mark.parametrize("audience", sorted(EXPECTED))
def test_each_audience_selects_its_rule(local_env, audience):
    members = _members(audience, engines.run_duckdb)

    assert set(members) == EXPECTED[audience]
    assert {row["audience"] for row in members.values()} == {audience}


def test_in_market_names_the_most_viewed_category(local_env):
    assert _members("in_market_category", engines.run_duckdb)[12]["detail"] == "bags"


def test_high_value_is_the_top_rfm_tier(local_env):
    members = _members("high_value", engines.run_duckdb)

    assert members  # the most recent, most frequent, highest spenders
    assert {7, 8} <= set(members)
    assert not {5, 6} & set(members)  # no order in 365 days: not ranked at all
    assert all(row["detail"].startswith("RFM ") for row in members.values())


def test_every_audience_is_equal_on_spark(local_env, spark):
    for audience in audiences.names():
        sql = audiences.members_sql(audience, DAY)
        on_duckdb = sorted(engines.run_duckdb(sql, _inputs()).to_pylist(), key=lambda r: r["customer_id"])
        on_spark = sorted(engines.run_spark(spark, sql, _inputs()).to_pylist(), key=lambda r: r["customer_id"])

        assert on_spark == on_duckdb, audience


def test_the_assignment_matches_python_and_the_configured_share(local_env, monkeypatch):

    monkeypatch.setenv("CROSSCHANNEL__ACTIVATION__HOLDOUT_PERCENT", "30")
    get_config.cache_clear()
    ids = list(range(1, 5001))
    inputs = {"features": pa.table({"customer_id": pa.array(ids, pa.int64())}),
              "scores": pa.table({"customer_id": pa.array(ids, pa.int64()), "model": ["repurchase"] * len(ids),
                                  "decile": pa.array([10] * len(ids), pa.int64())})}
    rows = engines.run_duckdb(audiences.members_sql("repurchase_lookalike", DAY), inputs).to_pylist()
    control = {row["customer_id"] for row in rows if row["assignment"] == "control"}

    assert control == {i for i in ids if audiences.is_control("repurchase_lookalike", i, 30)}
    assert 0.27 < len(control) / len(ids) < 0.33


def test_the_assignment_is_stable_across_days_and_differs_across_audiences(local_env):
    ids = range(1, 20001)
    win_back = {i for i in ids if audiences.is_control("win_back", i, 10)}
    high_value = {i for i in ids if audiences.is_control("high_value", i, 10)}
    assert win_back != high_value and 0.08 < len(win_back) / 20000 < 0.12

    for audience in audiences.names():
        today = _members(audience, engines.run_duckdb)
        later = {row["customer_id"]: row for row in engines.run_duckdb(
            audiences.members_sql(audience, DAY + dt.timedelta(days=3)), _inputs()).to_pylist()}
        for customer in set(today) & set(later):
            assert today[customer]["assignment"] == later[customer]["assignment"], (audience, customer)
        for customer, row in today.items():
            assert (row["assignment"] == "control") == audiences.is_control(audience, customer, 10)


def test_no_holdout_puts_everyone_in_treatment():
    assert audiences.control_below(0) == "00000000"
    assert not any(audiences.is_control("win_back", i, 0) for i in range(1000))
