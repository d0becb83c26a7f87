"""Customer features as of a day, and their labels: include/sql/trusted/customer_features.sql bound to a day."""

from __future__ import annotations

import datetime as dt

from crosschannel import engines

WINDOWS = (30, 90, 365)
LABEL_HORIZONS = (30, 90)
CHANNELS = ("store", "web", "app")


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()} 00:00:00"


def features_sql(as_of: dt.date, data_end: dt.date) -> str:
    """The features of `as_of` from the state at the end of `data_end`; labels only where their window ended."""
    end = as_of + dt.timedelta(days=1)
    return engines.render(
        "trusted/customer_features.sql",
        as_of=as_of.isoformat(),
        as_of_end=_stamp(end),
        windows=WINDOWS,
        channels=CHANNELS,
        since={days: _stamp(end - dt.timedelta(days=days)) for days in WINDOWS},
        until={days: _stamp(end + dt.timedelta(days=days)) for days in LABEL_HORIZONS},
        complete={days: as_of + dt.timedelta(days=days) <= data_end for days in LABEL_HORIZONS},
    )
