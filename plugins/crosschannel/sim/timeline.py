"""The simulator's time units: days as ordinals since the epoch, instants as microseconds since the epoch."""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)
DAY_US = 86_400_000_000


def day_ordinal(day: dt.date) -> int:
    return (day - EPOCH).days


def timestamps(us) -> np.ndarray:
    """Microseconds since the epoch to datetime64[us]."""
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]")
