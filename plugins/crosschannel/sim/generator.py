"""The generator's commands: build the retailer's history, then advance it live day by day.

`generate` bulk-loads the history into the source DB with change capture off and writes the Segment logs of
its last days; `advance` writes each live day through SQL (so change capture records it), writes its Segment
files and keeps its ground truth and change counts beside the generator state, under the storage root.
The simulation itself is `Retailer` (retailer.py).

Campaigns (campaigns.py): `generate(..., plant_sends=True)` plants a send of every audience on the days
`readouts.effect.planted_sends` before the start partition (members drawn from the latents, assigned by the
activation stage's hash) and `commit_planted_sends` commits them as those days' delivered audiences, so the first
partitions have readouts due (`make demo` does both); `record_sends(day)` gives the treatment members of the
audiences a pipeline run delivered the campaign effect from the next day on; `true_uplift` is a readout's truth.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

from crosschannel.core import paths, source, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.segment_files import write_day
from crosschannel.sim.changes import ChangeSet, HistoryBuffer, apply_changes
from crosschannel.sim.retailer import Retailer
from crosschannel.sim.timeline import DAY_US, day_ordinal
from crosschannel.stages.activation import audiences, outbox
from crosschannel.stages.readouts.sends import delivered_destinations

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


def generate(settings: GeneratorSettings, *, force: bool = False, plant_sends: bool = False) -> dict:
    """Build the retailer's history up to the day before the first partition and switch on change capture (and
    plant the demo's sends in it: see the module docstring)."""
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
    send_days = _planted_days(start, first_day) if plant_sends else set()
    planted = []
    while retailer.next_day < start:
        day = retailer.next_day
        changes, events = retailer.simulate_day(with_events=day >= events_from, n_stores=settings.stores)
        history.add(changes)
        if day in send_days:
            planted.append(_plant(retailer, day))
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
    if plant_sends:
        import pandas as pd

        with planted_path().open("wb") as handle:
            pd.concat(planted, ignore_index=True).to_parquet(handle, index=False)
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


# ---- campaigns: the planted and the live sends, and their truth

def planted_path() -> ObjectStoragePath:
    return paths.generator("planted_sends.parquet")


def _effect(audience: str) -> float:
    effect = get_config().readouts.effect
    unknown = set(effect.hazard_change) - set(audiences.names(every=True))
    if unknown:
        raise ValueError(f"readouts.effect.hazard_change: {sorted(unknown)} not an audience of include/sql/audiences/ "
                         f"({audiences.names(every=True)})")
    return effect.hazard_change.get(audience, 0.0)


def _planted_days(start: dt.date, first_day: dt.date) -> set[dt.date]:
    days = {start - dt.timedelta(days=k) for k in get_config().readouts.effect.planted_sends}
    if min(days, default=start) < first_day:
        raise ValueError(f"readouts.effect.planted_sends: {min(days)} is before the history's first day {first_day} "
                         "(raise generator.history_days or plant later)")
    return days


def _plant(retailer: Retailer, day: dt.date):
    """Every audience's planted send of `day`: its members and groups; the treatment members get the effect."""
    import pandas as pd

    frames = []
    for name in audiences.names(every=True):
        ids, control = retailer.planted_members(name, day, get_config().activation.holdout_percent)
        retailer.record_send(name, day, ids[~control], _effect(name), get_config().readouts.effect.days)
        frames.append(pd.DataFrame({"audience": name, "send_day": day.isoformat(), "customer_id": ids,
                                    "assignment": np.where(control, "control", "treatment")}))
    return pd.concat(frames, ignore_index=True)


def commit_planted_sends() -> dict[str, int]:
    """Commit the planted sends as their days' audiences, each day delivered (a Customer Profiles outbox document
    marked delivered, as the local outbox marks a real delivery), so campaign_readout reads them out. Members per
    send day."""
    import pandas as pd
    import pyarrow as pa

    with planted_path().open("rb") as handle:
        planted = pd.read_parquet(handle)
    counts = {}
    for (name, day_text), members in planted.groupby(["audience", "send_day"]):
        day = dt.date.fromisoformat(day_text)
        frame = pd.DataFrame({"audience": name, "customer_id": members["customer_id"].astype("int64"),
                              "detail": "planted by make demo", "assignment": members["assignment"]})
        sqljobs.write_partition(paths.audience_members(name, day), pa.Table.from_pandas(frame, preserve_index=False))
        counts[day_text] = counts.get(day_text, 0) + len(frame)
    for day_text in counts:
        outbox.write_outbox(outbox.PROFILES, dt.date.fromisoformat(day_text), outbox.new_attempt("demo-planted"),
                            "planted", [], {"status": "delivered", "sent": True, "delivered": True,
                                            "reason": "a send planted in the generated history by make demo"})
    return counts


def _treated(name: str, day: dt.date) -> np.ndarray:
    members = sqljobs.read_partition(paths.audience_members(name, day)).to_pandas()
    return members.loc[members["assignment"] == "treatment", "customer_id"].to_numpy()


def record_sends(day: dt.date) -> dict[str, int]:
    """After a pipeline run delivered `day`'s audiences: their treatment members get the campaign effect from the
    next day on (nothing when no destination delivered the day). Treated members per audience."""
    if not delivered_destinations(day):
        return {}
    retailer = Retailer.load(state_path())
    if retailer.next_day != day + dt.timedelta(days=1):
        raise RuntimeError(f"the generator's next day is {retailer.next_day}: record the sends of {day} right after "
                           "simulating it, before the days they change")
    counts = {}
    for name in audiences.names(every=True):
        if storage.is_committed(paths.audience_members(name, day)):
            treated = _treated(name, day)
            retailer.record_send(name, day, treated, _effect(name), get_config().readouts.effect.days)
            counts[name] = int(treated.size)
    retailer.save(state_path())
    return counts


def true_uplift(audience: str, send_day: dt.date, horizon: int) -> dict:
    """The generator's truth for a readout (campaigns.py): the effect on the send's treatment members."""
    retailer = Retailer.load(state_path())
    return retailer.campaign_truth(audience, send_day, horizon, _treated(audience, send_day))
