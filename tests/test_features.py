"""include/sql/trusted/customer_features.sql: features as of a day and complete-window labels, equal on
DuckDB and Spark 3.5, checked against hand-computed values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from crosschannel.core import engines
from crosschannel.core.config import Generator
from crosschannel.core.sqljobs import empty_table
from crosschannel.sim import generator
from crosschannel.stages.trusted.events import EVENTS_SCHEMA
from crosschannel.stages.trusted.features import customer_360_sql, features_sql

AS_OF = dt.date(2026, 6, 30)


def _inputs() -> dict[str, pa.Table]:
    money = pa.decimal128(12, 2)
    customers = pa.table({
        "customer_id": pa.array([1, 2, 3, 4], pa.int64()),
        "loyalty_tier": pa.array(["gold", "none", "silver", "none"], pa.string()),
        "signup_date": pa.array([dt.date(2025, 1, 1), dt.date(2026, 6, 1), dt.date(2024, 6, 30),
                                 dt.date(2026, 7, 5)], pa.date32()),
    })
    orders = [  # order_id, customer_id, order_ts, total, discount, channel
        (1, 1, dt.datetime(2026, 6, 29, 18), "100.00", "10.00", "web"),
        (2, 1, dt.datetime(2026, 5, 1, 10), "50.00", "0.00", "store"),
        (3, 1, dt.datetime(2025, 3, 1, 10), "30.00", "0.00", "store"),
        (4, 1, dt.datetime(2026, 7, 10, 9), "20.00", "0.00", "app"),  # after the as-of day: a label only
        (5, 2, dt.datetime(2026, 6, 30, 23, 59), "40.00", "0.00", "app"),  # last moment of the as-of day
        (6, 3, dt.datetime(2025, 1, 15, 12), "70.00", "0.00", "store"),
        (7, 3, dt.datetime(2026, 9, 30, 12), "15.00", "0.00", "web"),  # 92 days later: outside 90
    ]
    columns = list(zip(*orders, strict=True))
    orders_table = pa.table({
        "order_id": pa.array(columns[0], pa.int64()), "customer_id": pa.array(columns[1], pa.int64()),
        "order_ts": pa.array(columns[2], pa.timestamp("us")),
        "total": pa.array([Decimal(v) for v in columns[3]], money),
        "discount": pa.array([Decimal(v) for v in columns[4]], money), "channel": pa.array(columns[5], pa.string()),
    })
    returns = pa.table({
        "return_id": pa.array([1, 2], pa.int64()), "order_id": pa.array([2, 6], pa.int64()),
        "refund_amount": pa.array([Decimal("25.00"), Decimal("70.00")], money),
        "return_ts": pa.array([dt.datetime(2026, 5, 20), dt.datetime(2025, 2, 1)], pa.timestamp("us")),
    })
    products = pa.table({"product_id": pa.array([10, 20], pa.int64()), "category": pa.array(["shoes", "bags"])})
    order_lines = pa.table({  # customer 1: 3 shoes in 365 days, 1 bag; the 2025-03-01 order is older
        "order_id": pa.array([1, 1, 2, 3], pa.int64()), "product_id": pa.array([10, 20, 10, 20], pa.int64()),
        "quantity": pa.array([2, 1, 1, 5], pa.int64()),
    })
    events = [  # event_name, customer_id, event_ts
        ("Product Viewed", 1, dt.datetime(2026, 6, 29, 17)),
        ("Product Added", 1, dt.datetime(2026, 6, 29, 17, 30)),  # ordered that day: not abandoned
        ("Product Added", 1, dt.datetime(2026, 6, 20, 9)),  # no order that day: abandoned
        ("Product Added", 1, dt.datetime(2026, 6, 20, 9, 5)),  # the same day counts once
        ("Product Added to Wishlist", 1, dt.datetime(2026, 6, 20, 9, 10)),
        ("Products Searched", 2, dt.datetime(2026, 6, 25, 12)),
        ("Product Viewed", 2, dt.datetime(2026, 5, 1, 12)),  # before the 30-day window
        ("Product Viewed", 2, dt.datetime(2026, 7, 1, 0)),  # after the as-of day
        ("Product Viewed", None, dt.datetime(2026, 6, 29, 12)),  # never identified
    ]
    columns = list(zip(*events, strict=True))
    events_table = pa.table({"event_name": pa.array(columns[0]), "customer_id": pa.array(columns[1], pa.int64()),
                             "event_ts": pa.array(columns[2], pa.timestamp("us"))})
    return {"customers": customers, "orders": orders_table, "returns": returns, "products": products,
            "order_lines": order_lines, "events": events_table}


def _by_customer(table: pa.Table) -> dict[int, dict]:
    return {row["customer_id"]: row for row in table.to_pylist()}


def test_features_and_labels_on_duckdb():
    rows = _by_customer(engines.run_duckdb(features_sql(AS_OF, dt.date(2026, 11, 1)), _inputs()))

    assert set(rows) == {1, 2, 3}  # customer 4 signed up after the as-of day
    one = rows[1]
    assert (one["recency_days"], one["orders_lifetime"], one["frequency_30d"], one["frequency_90d"],
            one["frequency_365d"]) == (1, 3, 1, 2, 2)
    assert (one["monetary_30d"], one["monetary_365d"]) == (Decimal("100.00"), Decimal("150.00"))
    assert (one["web_share_365d"], one["store_share_365d"], one["app_share_365d"]) == (0.5, 0.5, 0.0)
    assert one["discount_share_365d"] == 10 / 160
    assert (one["returns_90d"], one["refunds_90d"]) == (1, Decimal("25.00"))
    assert (one["repurchase_30d"], one["churn_90d"]) == (1, 0)
    assert one["tenure_days"] == 545
    assert (one["product_views_30d"], one["cart_adds_30d"], one["cart_abandons_30d"], one["wishlist_adds_30d"],
            one["searches_30d"], one["days_since_visit"]) == (1, 3, 1, 1, 0, 1)
    assert (one["top_category_365d"], one["top_category_share_365d"]) == ("shoes", 0.75)
    assert (rows[2]["searches_30d"], rows[2]["product_views_30d"], rows[2]["days_since_visit"]) == (1, 0, 5)
    assert rows[3]["days_since_visit"] is None and rows[3]["top_category_365d"] is None
    assert (rows[2]["recency_days"], rows[2]["repurchase_30d"], rows[2]["churn_90d"]) == (0, 0, 1)
    assert (rows[3]["recency_days"], rows[3]["frequency_365d"], rows[3]["returns_90d"]) == (531, 0, 0)
    assert rows[3]["web_share_365d"] is None and rows[3]["churn_90d"] == 1


def test_labels_stay_null_until_their_window_is_complete():
    rows = _by_customer(engines.run_duckdb(features_sql(AS_OF, dt.date(2026, 8, 15)), _inputs()))

    assert rows[1]["repurchase_30d"] == 1 and rows[1]["churn_90d"] is None


def test_spark_gives_the_same_features(spark):
    sql = features_sql(AS_OF, dt.date(2026, 11, 1))

    on_duckdb = engines.run_duckdb(sql, _inputs()).to_pylist()
    on_spark = engines.run_spark(spark, sql, _inputs()).to_pylist()

    assert on_spark == on_duckdb


def test_labels_agree_with_the_generators_ground_truth():
    """On a simulated retailer the SQL's churn label is what the generator's true probability predicts:
    calibrated on average, and ranked well (the oracle AUC that issue 4's models are measured against)."""
    import numpy as np

    settings = Generator(seed=11, customers=3000, stores=5, products=60, history_days=200, event_history_days=1,
                         start_partition="2026-11-01")
    retailer = generator.Retailer.create(settings)
    history = generator.HistoryBuffer()
    initial = np.arange(1, retailer.meta["customers"] + 1)
    base = retailer.customer_rows(initial, retailer.a["c_signup"][initial - 1].astype(np.int64) * generator.DAY_US)
    while retailer.next_day < dt.date(2026, 11, 1):
        changes, _ = retailer.simulate_day(with_events=False, n_stores=settings.stores)
        history.add(changes)
    as_of = dt.date(2026, 7, 15)
    truth = retailer.truth(as_of).set_index("customer_id")
    tables = {name: pa.Table.from_pandas(history.table(name, base if name == "customers" else None),
                                         preserve_index=False)
              for name in ("customers", "orders", "returns", "order_lines")}
    all_products = np.arange(retailer.a["p_price"].size)
    tables["products"] = pa.Table.from_pandas(retailer.product_rows(all_products, 0), preserve_index=False)
    tables["events"] = empty_table(EVENTS_SCHEMA)

    rows = engines.run_duckdb(features_sql(as_of, dt.date(2026, 10, 31)), tables).to_pandas().set_index("customer_id")

    joined = rows.join(truth, how="inner")
    label, p_churn = joined["churn_90d"].to_numpy(), joined["p_churn_90d"].to_numpy()
    assert len(joined) == len(truth)
    standard_error = np.sqrt((p_churn * (1 - p_churn)).sum()) / len(p_churn)
    assert label.mean() == pytest.approx(p_churn.mean(), abs=4 * standard_error)
    churned, stayed = p_churn[label == 1], p_churn[label == 0]
    assert (churned[:, None] > stayed[None, :]).mean() + 0.5 * (churned[:, None] == stayed[None, :]).mean() > 0.8


def _customer_360_inputs() -> dict[str, pa.Table]:
    inputs = _inputs()
    profile = {"first_name": ["Ann", "Bo", "Cy", "Di"], "last_name": ["A", "B", "C", "D"],
               "email": ["ann@example.com", None, "cy@example.com", "di@example.com"],
               "phone": ["+15550100001", None, None, None], "email_opt_in": [True, False, True, True],
               "sms_opt_in": [True, False, False, False], "home_store_id": [100, None, 100, 999]}
    customers = inputs["customers"]
    for name, values in profile.items():
        customers = customers.append_column(name, pa.array(values))
    identities = pa.table({"anonymous_id": pa.array(["d1", "d2", "d3"]), "customer_id": pa.array([1, 1, 2], pa.int64()),
                           "identified_at": pa.array([dt.datetime(2026, 6, 1)] * 3, pa.timestamp("us"))})
    stores = pa.table({"store_id": pa.array([100], pa.int64()), "name": pa.array(["Main St"]),
                       "region": pa.array(["north"])})
    return {**inputs, "customers": customers, "identities": identities, "stores": stores}


def test_customer_360_on_duckdb_and_spark(spark):
    sql = customer_360_sql(AS_OF)

    on_duckdb = engines.run_duckdb(sql, _customer_360_inputs())
    rows = _by_customer(on_duckdb)

    assert set(rows) == {1, 2, 3, 4}  # every customer, whatever they did
    one = rows[1]
    assert (one["store_orders"], one["online_orders"]) == (2, 1)  # the order after the as-of day is not counted
    assert (one["store_revenue"], one["online_revenue"], one["lifetime_revenue"]) == (
        Decimal("80.00"), Decimal("100.00"), Decimal("180.00"))
    assert (one["last_order_ts"], one["last_store_order_ts"]) == (
        dt.datetime(2026, 6, 29, 18), dt.datetime(2026, 5, 1, 10))
    assert (one["returns_lifetime"], one["refunds_lifetime"], one["known_devices"]) == (1, Decimal("25.00"), 2)
    assert (one["events_30d"], one["last_seen_ts"], one["home_store_name"]) == (
        5, dt.datetime(2026, 6, 29, 17, 30), "Main St")
    assert (rows[2]["events_30d"], rows[2]["known_devices"], rows[2]["home_region"]) == (1, 1, None)
    assert rows[4]["store_orders"] == 0 and rows[4]["last_order_ts"] is None and rows[4]["home_store_name"] is None
    assert engines.run_spark(spark, sql, _customer_360_inputs()).to_pylist() == on_duckdb.to_pylist()
