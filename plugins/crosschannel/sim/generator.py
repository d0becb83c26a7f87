"""The generator's commands: build the retailer's history, then advance it live day by day.

`generate` bulk-loads the history into the source DB with change capture off and writes the Segment logs of
its last days; `advance` writes each live day through SQL (so change capture records it), writes its Segment
files and keeps its ground truth and change counts beside the generator state, under the storage root.
The simulation itself is `Retailer` (retailer.py).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.core.config import get_config
from crosschannel.core.segment_files import write_day
from crosschannel.sim.changes import ChangeSet, HistoryBuffer, apply_changes
from crosschannel.sim.retailer import Retailer
from crosschannel.sim.timeline import DAY_US, day_ordinal

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from crosschannel.core.config import Generator as GeneratorSettings


def state_path() -> ObjectStoragePath:
    return paths.generator("state.npz")


def _source_engine() -> sa.Engine:
    return source.connect(get_config().source.sqlalchemy_url, create=True)


def _segment_logs() -> ObjectStoragePath:
    return storage.location(get_config().segment.logs_url)


def _record_day(day: dt.date, retailer: Retailer, changes: ChangeSet, n_events: int) -> dict:
    """Keep the day's ground truth and change counts beside the generator state (never in the source DB)."""
    folder = paths.partition("generator", "days", day=day)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "truth.parquet").open("wb") as handle:
        retailer.truth(day).to_parquet(handle, index=False)
    summary = {"day": day.isoformat(), "changes": changes.counts(), "events": n_events}
    storage.write_json(folder / "changes.json", summary)
    return summary


def generate(settings: GeneratorSettings, *, force: bool = False) -> dict:
    """Build the retailer's history up to the day before the first partition and switch on change capture."""
    engine = _source_engine()
    with engine.connect() as conn:
        if not force and sa.inspect(conn).has_table("customers") and conn.execute(
            sa.select(sa.func.count()).select_from(source.customers)).scalar_one():
            raise RuntimeError(f"the source DB {engine.url!r} already holds customers: pass --force to rebuild it")
    source.metadata.drop_all(engine)
    source.create_schema(engine)

    retailer = Retailer.create(settings)
    first_day = retailer.next_day
    start = dt.date.fromisoformat(settings.start_partition)
    events_from = start - dt.timedelta(days=settings.event_history_days)
    initial = np.arange(1, retailer.meta["customers"] + 1)
    a = retailer.a
    opened_us = day_ordinal(first_day) * DAY_US
    base = {
        "stores": retailer.store_rows(opened_us),
        "products": retailer.product_rows(np.arange(a["p_price"].size), opened_us),
        "customers": retailer.customer_rows(initial, a["c_signup"][initial - 1].astype(np.int64) * DAY_US
                                            + a["c_signup_us"][initial - 1]),
        "inventory": retailer.inventory_rows(opened_us),
    }
    history = HistoryBuffer()
    logs = _segment_logs()
    n_events = 0
    while retailer.next_day < start:
        day = retailer.next_day
        changes, events = retailer.simulate_day(with_events=day >= events_from, n_stores=settings.stores)
        history.add(changes)
        if events:
            write_day(logs, get_config().segment.source_id, day, events)
            n_events += len(events)
    rows = {}
    with engine.begin() as conn:
        for tbl in source.RETAIL_TABLES:
            frame = history.table(tbl.name, base.get(tbl.name))
            rows[tbl.name] = source.bulk_insert(conn, tbl, frame)
        source.set_clock(conn, dt.datetime.combine(start, dt.time(0)))
    source.enable_cdc(engine)
    retailer.save(state_path())
    return {"first_day": first_day.isoformat(), "last_day": (start - dt.timedelta(days=1)).isoformat(),
            "rows": rows, "events": n_events}


def advance(days: int = 1, *, n_stores: int | None = None) -> list[dict]:
    """Simulate the next `days` days live: SQL changes through change capture, Segment files, ground truth."""
    cfg = get_config()
    retailer = Retailer.load(state_path())
    engine = _source_engine()
    logs = _segment_logs()
    stores = n_stores or int(retailer.a["s_region"].size)
    summaries = []
    for _ in range(days):
        day = retailer.next_day
        changes, events = retailer.simulate_day(with_events=True, n_stores=stores)
        with engine.begin() as conn:
            apply_changes(conn, changes, day)
        write_day(logs, cfg.segment.source_id, day, events)
        summaries.append(_record_day(day, retailer, changes, len(events)))
        retailer.save(state_path())
    return summaries
