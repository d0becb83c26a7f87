"""Derived from the trusted zone for a partition: customer 360 (include/sql/trusted/customer_360.sql) and the
customer features with their labels (include/sql/trusted/customer_features.sql), bound to a day.

Both are SQL jobs over the published trusted partitions of the day (and the typed events of the 30 days up
to it), gated together by the `trusted_customer_360` and `features_customer` suites, then published to
<root>/trusted/customer_360/dt=.../ and <root>/features/customer/dt=.../.
"""

from __future__ import annotations

import datetime as dt

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.stages.trusted.events import EVENTS_SCHEMA

WINDOWS = (7, 14, 30, 60, 90, 180, 365)
LABEL_HORIZONS = (30, 90)
CHANNELS = ("store", "web", "app")
EVENT_DAYS = 30
FEATURE_INPUTS = ("customers", "orders", "order_lines", "products", "returns")
CUSTOMER_360_INPUTS = ("customers", "stores", "orders", "returns")


def features_sql(as_of: dt.date, data_end: dt.date) -> str:
    """The features of `as_of` from the state at the end of `data_end`; labels only where their window ended."""
    end = as_of + dt.timedelta(days=1)
    return engines.render(
        "trusted/customer_features.sql",
        as_of=as_of.isoformat(),
        as_of_end=engines.stamp(end),
        windows=WINDOWS,
        channels=CHANNELS,
        since={days: engines.stamp(end - dt.timedelta(days=days)) for days in WINDOWS},
        until={days: engines.stamp(end + dt.timedelta(days=days)) for days in LABEL_HORIZONS},
        complete={days: as_of + dt.timedelta(days=days) <= data_end for days in LABEL_HORIZONS},
    )


def customer_360_sql(day: dt.date) -> str:
    end = day + dt.timedelta(days=1)
    return engines.render("trusted/customer_360.sql", as_of=day.isoformat(), as_of_end=engines.stamp(end),
                          since_30d=engines.stamp(end - dt.timedelta(days=EVENT_DAYS)))


def event_days(day: dt.date) -> list:
    """The published typed-event partitions of the EVENT_DAYS days up to `day` (missing days are skipped)."""
    folders = [paths.trusted("events", day - dt.timedelta(days=n)) for n in range(EVENT_DAYS)]
    return [f for f in reversed(folders) if storage.is_committed(f)]


def inputs(day: dt.date, tables: tuple[str, ...], as_of: dt.date | None = None) -> dict:
    """SQL job inputs: the published trusted `tables` of partition `day`, and the typed events of the
    EVENT_DAYS days up to `as_of` (default: the partition day)."""
    return {**{name: sqljobs.parquet([paths.trusted(name, day)]) for name in tables},
            "events": sqljobs.parquet(event_days(as_of or day), EVENTS_SCHEMA)}


def plan_derived(day: dt.date, run: str = "") -> list[dict]:
    """The customer 360 and features jobs of the partition, over its published trusted partitions."""
    identities = sqljobs.parquet([paths.trusted("identity_map", day)])
    return [
        sqljobs.job(day, "customer_360.sql", customer_360_sql(day), {**inputs(day, CUSTOMER_360_INPUTS),
                    "identities": identities}, paths.candidate("customer_360", day, run=run)),
        sqljobs.job(day, "customer_features.sql", features_sql(day, day), inputs(day, FEATURE_INPUTS),
                    paths.features_candidate(day, run)),
    ]

