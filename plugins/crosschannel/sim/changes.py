"""A day's changes to the source DB, and the two ways they reach it.

Live days go through SQL (`apply_changes`), so the change-capture triggers see real inserts, updates and
deletes; the history is accumulated in memory (`HistoryBuffer`) and bulk-loaded with capture off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crosschannel.core import source

PK = {t.name: [c.name for c in t.primary_key.columns] for t in source.RETAIL_TABLES}


@dataclass
class ChangeSet:
    """One day's changes to the source DB, per table: rows to insert, partial updates, keys to delete."""

    inserts: dict[str, pd.DataFrame] = field(default_factory=dict)
    updates: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    deletes: dict[str, pd.DataFrame] = field(default_factory=dict)

    def update(self, table: str, frame: pd.DataFrame) -> None:
        if len(frame):
            self.updates.setdefault(table, []).append(frame)

    def counts(self) -> dict[str, dict[str, int]]:
        """Operations per table, as change capture should record them: {table: {"I": n, "U": n, "D": n}}."""
        out: dict[str, dict[str, int]] = {}
        for tbl in source.RETAIL_TABLES:
            ops = {
                "I": len(self.inserts.get(tbl.name, ())),
                "U": sum(len(f) for f in self.updates.get(tbl.name, [])),
                "D": len(self.deletes.get(tbl.name, ())),
            }
            if any(ops.values()):
                out[tbl.name] = ops
        return out


def _records(frame: pd.DataFrame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")


def _py(value):
    if isinstance(value, np.datetime64 | pd.Timestamp):
        return pd.Timestamp(value).to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def apply_changes(conn: sa.Connection, changes: ChangeSet, day: dt.date) -> None:
    """Write a day's changes through SQL: inserts, then updates, then deletes, in table order."""
    for tbl in source.RETAIL_TABLES:
        frame = changes.inserts.get(tbl.name)
        if frame is not None and len(frame):
            conn.execute(tbl.insert(), [{k: _py(v) for k, v in r.items()} for r in _records(frame)])
    for tbl in source.RETAIL_TABLES:
        for frame in changes.updates.get(tbl.name, []):
            keys = PK[tbl.name]
            cols = [c for c in frame.columns if c not in keys]
            stmt = tbl.update().where(*[tbl.c[k] == sa.bindparam("k_" + k) for k in keys]).values(
                {c: sa.bindparam("v_" + c) for c in cols})
            rows = [{("k_" if k in keys else "v_") + k: _py(v) for k, v in r.items()} for r in _records(frame)]
            conn.execute(stmt, rows)
    source.set_clock(conn, dt.datetime.combine(day, dt.time(23, 30)))
    for tbl in source.RETAIL_TABLES:
        frame = changes.deletes.get(tbl.name)
        if frame is not None and len(frame):
            keys = PK[tbl.name]
            stmt = tbl.delete().where(*[tbl.c[k] == sa.bindparam("k_" + k) for k in keys])
            conn.execute(stmt, [{"k_" + k: _py(v) for k, v in r.items()} for r in _records(frame)])
    source.set_clock(conn, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)))


class HistoryBuffer:
    """Accumulates history days in memory and resolves them into final table contents."""

    def __init__(self) -> None:
        self.inserts: dict[str, list[pd.DataFrame]] = {}
        self.updates: dict[str, list[pd.DataFrame]] = {}
        self.deletes: dict[str, list[pd.DataFrame]] = {}

    def add(self, changes: ChangeSet) -> None:
        for name, frame in changes.inserts.items():
            if len(frame):
                self.inserts.setdefault(name, []).append(frame)
        for name, frames in changes.updates.items():
            self.updates.setdefault(name, []).extend(frames)
        for name, frame in changes.deletes.items():
            if len(frame):
                self.deletes.setdefault(name, []).append(frame)

    def table(self, name: str, base: pd.DataFrame | None = None) -> pd.DataFrame:
        keys = PK[name]
        frames = ([base] if base is not None else []) + self.inserts.get(name, [])
        if not frames:
            return pd.DataFrame(columns=[c.name for c in source.table(name).columns])
        frame = pd.concat(frames, ignore_index=True)
        if name in self.updates:
            changed = pd.concat(self.updates[name], ignore_index=True).groupby(keys, sort=False).last()
            frame = frame.set_index(keys)
            for column in changed.columns:
                values = changed[column].dropna()
                if frame[column].dtype != values.dtype and values.dtype != object:
                    frame[column] = frame[column].astype(np.result_type(frame[column].dtype, values.dtype))
                frame.loc[values.index, column] = values.to_numpy()
            frame = frame.reset_index()
        if name in self.deletes:
            gone = pd.concat(self.deletes[name], ignore_index=True)
            marker = frame[keys].merge(gone.assign(_gone=True), on=keys, how="left")["_gone"].fillna(False)
            frame = frame[~marker.to_numpy(dtype=bool)]
        missing = [c.name for c in source.table(name).columns if c.name not in frame and not c.nullable]
        if missing:
            raise ValueError(f"table {name}: the changes lack the required column(s) {', '.join(missing)}")
        return frame.reindex(columns=[c.name for c in source.table(name).columns])  # optional columns: null
