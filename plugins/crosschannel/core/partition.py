"""The run's day and identity, read from an Airflow task context (a plain mapping: no Airflow import).

`partition_day` is the one resolver of the day a run works on; `is_backfill` says whether the run rebuilds
history (and so must not send); `run_flag` reads a boolean Param; `run_hash` names per-run AWS jobs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(value: str, where: str) -> dt.date:
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"{where}: partition {value!r} is not a YYYY-MM-DD day")
    return dt.date.fromisoformat(value)


def partition_day(context) -> dt.date:
    """The day a run works on, in this order: asset partition key, the partition the triggering asset events
    carry, the run's conf/Params, the data interval.

    Manual and asset-triggered runs have no logical date in Airflow 3, so nothing else may read `ds`.
    """
    key = context.get("partition_key")
    if key:
        return parse_day(key[:10], "asset partition key")
    carried = {
        event.extra.get("partition")
        for events in (context.get("triggering_asset_events") or {}).values()
        for event in events
        if event.extra.get("partition")
    }
    if len(carried) > 1:
        raise ValueError(f"the triggering asset events carry several partitions {sorted(carried)}: run one per day")
    if carried:
        return parse_day(carried.pop(), "triggering asset event")
    conf = _conf(context)
    if conf.get("partition"):
        return parse_day(conf["partition"], "dag_run.conf")
    params = context.get("params") or {}
    if params.get("partition"):
        return parse_day(params["partition"], "params")
    start = context.get("data_interval_start")
    if start is not None:
        return start.date()
    raise ValueError(
        "this run has no partition: trigger it with a 'partition' (YYYY-MM-DD) in its Params or conf, "
        "or let the schedule or an upstream asset event set it"
    )


def run_partition(partition_key: str | None, conf: dict | None) -> str | None:
    """The partition a stored DagRun names (its partition key, else the `partition` of its conf), unparsed: what
    the deadline reference and the deadline message read from the metadata DB."""
    return partition_key or (conf or {}).get("partition") or None


def is_backfill(context) -> bool:
    """A backfill run, or a run of events a backfill emitted: a backfill at the head triggers asset runs
    downstream, which carry the flag on (`crosschannel.wiring.defaults.emit`)."""
    dag_run = context.get("dag_run")
    if str(getattr(dag_run, "run_type", "") or "") == "backfill":
        return True
    return any((event.extra or {}).get("backfill") or str(getattr(event, "source_run_id", "") or "").startswith(
        "backfill__") for events in (context.get("triggering_asset_events") or {}).values() for event in events)


def run_flag(context, name: str) -> bool:
    """A boolean run-level input (a Param such as `force_publish`): the run's conf first, then its Params. Only a
    real boolean counts: a string such as "false" is refused, never read as true."""
    value = _conf(context).get(name, (context.get("params") or {}).get(name, False))
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not true or false (a JSON boolean in the run's conf or Params)")
    return value


def run_hash(run: str) -> str:
    """A short stable hash of the Airflow run id: job names AWS needs unique per run carry it, so a re-run
    starts fresh jobs."""
    return hashlib.sha256(run.encode()).hexdigest()[:6]


def _conf(context) -> dict:
    dag_run = context.get("dag_run")
    return (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
