"""The sends due a readout on a partition, and the SQL job that sums their treatment and control groups' outcomes.

A send is an audience's committed members of day D (crosschannel.stages.activation.audiences) on a day that at least
one destination delivered (an attempt's outbox records the delivery: crosschannel.stages.activation.outbox); a day
only rebuilt by a backfill sent nothing and has no readout. The readout of a send at horizon h is due on partition
D + h: the run of partition P reads out the sends of P - h for every horizon in `readouts.horizons_days`, over the
trusted orders of P (the current state at the end of P, so the window, the days D + 1 to P, is complete).

Where the send day's members had recommendation lists (crosschannel.stages.activation.recommended: control members
get theirs too, never sent), the job also counts per group the members with a list and those who bought an item
of it in the window: "bought a recommended item" for treatment against control.

Members are compared by assignment (intention to treat): a treatment member no channel could reach still counts
as treatment, as its control counterpart counts as control; the hold-out is a stable hash, so the two groups are
alike but for the send.

On aws the job runs in Glue like the audiences' (the orders table is the large input, and it stays in the engine);
what comes back is one row per send and group, which the readout task reads whole.
"""

from __future__ import annotations

import datetime as dt

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import MissingPartition
from crosschannel.stages.activation import audiences, outbox, recommended

DUE, NOT_SENT, NOT_BUILT = "due", "not sent", "no audience partition"


def delivered_destinations(day: dt.date) -> list[str]:
    """The destinations an attempt of `day` delivered to (none: the day was not sent)."""
    return sorted(d for d in outbox.DESTINATIONS if outbox.delivered_documents(d, day))


def due(day: dt.date) -> list[dict]:
    """Per horizon and audience, the send of `day` - horizon and whether its readout is due on `day`."""
    found = []
    for horizon in get_config().readouts.horizons_days:
        send_day = day - dt.timedelta(days=horizon)
        destinations = delivered_destinations(send_day)
        for name in audiences.names():
            built = storage.is_committed(paths.audience_members(name, send_day))
            status = NOT_BUILT if not built else DUE if destinations else NOT_SENT
            found.append({"audience": name, "send_day": send_day.isoformat(), "horizon_days": horizon,
                          "status": status, "destinations": destinations})
    return found


def plan(day: dt.date) -> list[dict]:
    """The SQL job of the sends due on `day` (none when no send is due)."""
    sends = [send for send in due(day) if send["status"] == DUE]
    if not sends:
        return []
    orders = paths.trusted("orders", day)
    if not storage.is_committed(orders):
        raise MissingPartition(f"{storage.url_of(orders)}: no published trusted orders for {day}, which the readouts "
                               "due on it need; run retail_trusted for the partition first")
    horizons = sorted({send["horizon_days"] for send in sends})
    inputs = {"orders": sqljobs.parquet([orders])}
    blocks = []
    for horizon in horizons:
        send_day = day - dt.timedelta(days=horizon)
        inputs[f"members_{horizon}d"] = sqljobs.parquet(
            [paths.audience_members(send["audience"], send_day) for send in sends if send["horizon_days"] == horizon])
        listed = storage.is_committed(recommended.members_dir(send_day))
        if listed:
            inputs[f"recommended_{horizon}d"] = sqljobs.parquet([recommended.members_dir(send_day)])
            inputs["order_lines"] = sqljobs.parquet([paths.trusted("order_lines", day)])
        blocks.append({"day": send_day.isoformat(), "horizon": horizon, "recommended": listed,
                       "window_start": engines.stamp(send_day + dt.timedelta(days=1))})
    sql = engines.render("readouts/campaign_groups.sql", sends=blocks,
                         window_end=engines.stamp(day + dt.timedelta(days=1)))
    return [sqljobs.job(day, "campaign_groups.sql", sql, inputs, paths.readout_groups(day))]


def groups(day: dt.date) -> list[dict]:
    """The committed group statistics of the readouts due on `day`: one row per audience, send and assignment."""
    folder = paths.readout_groups(day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: the readouts due on {day} have no committed group "
                               "statistics (did build_readout_groups run for the partition?)")
    return sqljobs.read_partition(folder).to_pylist()
