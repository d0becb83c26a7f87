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
    try:
        if isinstance(value, str) and _DAY.match(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError(f"{where}: partition {value!r} is not a YYYY-MM-DD day")


def partition_day(context) -> dt.date:
    """The day a run works on: its Airflow partition key (set by the schedules, by partitioned asset events, or
    by hand in the trigger form's Partition Key, the REST API's `partition_key` or `python -m crosschannel
    trigger`). Only where Airflow 3.3 offers no key, `airflow dags test` and `airflow dags trigger`, the conf's
    `partition` stands in (`-c '{"partition": "2026-11-02"}'`)."""
    key = context.get("partition_key")
    if key:
        return parse_day(key, "partition key")
    conf = _conf(context)
    if conf.get("partition"):
        return parse_day(conf["partition"], "dag_run.conf")
    raise ValueError("this run has no partition key: trigger it with a Partition Key (YYYY-MM-DD) in the trigger "
                     "form's Advanced options, `partition_key` in the REST API or `python -m crosschannel trigger "
                     "<dag_id> --partition <day>` (`airflow dags test` takes `-c '{\"partition\": \"<day>\"}'`), "
                     "or let the schedule or an upstream asset event set it")


def run_partition(partition_key: str | None, conf: dict | None) -> str | None:
    """The partition a stored DagRun names, unparsed: its partition key, else the `partition` of its conf (see
    partition_day). What the reports view reads."""
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
