"""What every activation destination shares: whether a run may send, the per-customer profile sent out, the
requests validated against the botocore service models, and the outbox they are recorded in.

    <root>/activation/<destination>/dt=D/...           the day's import files
    <root>/activation/<destination>/dt=D/outbox/*.json the exact API requests, validated, with their receipt
    <root>/activation/<destination>/state/...          what was last sent (segment ids, last import, traits)

A run sends only for the newest scored partition, and never from a backfill, unless its `force_publish` Param
is set: a backfill rebuilds the files and the validated requests, and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from crosschannel import storage
from crosschannel.config import get_config

if TYPE_CHECKING:
    import pandas as pd

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[A-Za-z]{2,}$")


class ActivationError(RuntimeError):
    """An activation step failed; the message names the destination, partition and what went wrong."""


def zone(destination: str, day: dt.date, *parts: str):
    return storage.zone("activation", destination, f"dt={day.isoformat()}", *parts)


def state_path(destination: str, name: str):
    return storage.zone("activation", destination, "state", f"{name}.json")


def read_state(destination: str, name: str) -> dict:
    path = state_path(destination, name)
    return storage.read_json(path) if path.exists() else {}


def write_state(destination: str, name: str, state: dict) -> None:
    storage.write_json(state_path(destination, name), state)


def _newest_scored_partition() -> str | None:
    model = next(iter(get_config().models.specs))
    base = storage.zone("ml", model, "scores")
    days = [p.name.removeprefix("dt=") for p in base.glob("dt=*") if storage.is_committed(p / "scores")] \
        if base.exists() else []
    return max(days, default=None)


def decide(day: dt.date, *, force: bool, backfill: bool) -> dict:
    """Whether this run sends: only for the newest scored partition, never from a backfill, unless forced."""
    newest = _newest_scored_partition()
    if force:
        return {"send": True, "reason": "force_publish is set", "newest_partition": newest}
    if backfill:
        return {"send": False, "reason": "a backfill run rebuilds files and sends nothing (set force_publish to send)",
                "newest_partition": newest}
    if newest is not None and day.isoformat() < newest:
        return {"send": False, "reason": f"partition {day} is older than the newest scored partition {newest}: "
                                         "files rebuilt, nothing sent (set force_publish to send)",
                "newest_partition": newest}
    return {"send": True, "reason": "the newest partition", "newest_partition": newest}


def decide_for_run(day: dt.date, context) -> dict:
    """`decide` for a task's run: the `force_publish` Param or conf, and whether the run is a backfill or was
    triggered by one (at the head of the chain)."""
    from crosschannel.pipeline import is_backfill

    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    force = bool(conf.get("force_publish", (context.get("params") or {}).get("force_publish", False)))
    return decide(day, force=force, backfill=is_backfill(context))


def profiles(day: dt.date, members: pd.DataFrame) -> pd.DataFrame:
    """One row per scored customer: contacts and tier from the trusted state, each model's probability, decile
    and reasons, and the audiences the customer is a *treatment* member of (control members are never sent)."""
    from crosschannel import scoring, sqljobs, trusted

    frame = sqljobs.read_partition(trusted.final_dir("customers", day)).to_pandas()[
        ["customer_id", "first_name", "last_name", "email", "phone", "email_opt_in", "sms_opt_in", "loyalty_tier"]]
    scored = None
    for model in get_config().models.specs:
        scores = sqljobs.read_partition(scoring.scores_dir(model, day, "scores")).to_pandas()
        scores = scores[["customer_id", "probability", "decile", "reason_1", "reason_2", "reason_3"]]
        scores = scores.rename(columns={c: f"{model}_{c}" for c in scores.columns if c != "customer_id"})
        scored = scores if scored is None else scored.merge(scores, on="customer_id", how="outer")
    frame = scored.merge(frame, on="customer_id", how="left")
    treated = members[members["assignment"] == "treatment"].groupby("customer_id")["audience"].agg(sorted)
    frame["audiences"] = frame["customer_id"].map(treated).apply(lambda v: v if isinstance(v, list) else [])
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def profiles_dir(day: dt.date):
    return zone("profiles", day)


def prepare(day: dt.date, decision: dict) -> dict:
    """Check the day's audiences and commit the profile table every destination reads."""
    import pyarrow as pa

    from crosschannel import audiences, sqljobs

    members = audiences.read(day)
    counts = audiences.summarize(day, members)
    frame = profiles(day, members)
    sqljobs.write_partition(profiles_dir(day), pa.Table.from_pandas(frame, preserve_index=False))
    return {"partition": day.isoformat(), "audiences": counts, "profiles": len(frame), "decision": decision}


def read_profiles(day: dt.date) -> pd.DataFrame:
    from crosschannel import sqljobs

    frame = sqljobs.read_partition(profiles_dir(day)).to_pandas()
    frame["audiences"] = frame["audiences"].map(list)
    return frame


def clean_phone(value) -> str | None:
    """A phone in E.164, or None (separators are dropped; a number without its country code is not guessed)."""
    if not isinstance(value, str):
        return None
    phone = re.sub(r"[\s().-]", "", value)
    return phone if E164.match(phone) else None


def clean_email(value) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip()
    return email if EMAIL.match(email) else None


def validate(service: str, operation: str, params: dict) -> dict:
    """The request, checked against the installed botocore service model (the same check boto3 makes before
    sending); an invalid one raises naming the service, operation and every problem."""
    import botocore.session
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model(service)
    try:
        validate_parameters(params, model.operation_model(operation).input_shape)
    except ParamValidationError as exc:
        raise ActivationError(f"{service} {operation}: the request does not match the API ({exc})") from None
    return {"service": service, "operation": operation, "params": params,
            "api_version": model.api_version}


def write_outbox(destination: str, day: dt.date, name: str, requests: list[dict], receipt: dict) -> str:
    """Record a destination's requests for the day with their receipt; returns the document's URL."""
    path = zone(destination, day, "outbox", f"{name}.json")
    storage.write_json(path, {"destination": destination, "partition": day.isoformat(), "name": name,
                              "requests": requests, "receipt": receipt})
    return storage.url_of(path)


def receipt(plan: dict, **fields) -> str:
    """Update the receipt of a planned request document (when it was sent, or why not)."""
    path = storage.location(plan["outbox"])
    document = storage.read_json(path)
    document["receipt"] = {**document["receipt"], **fields}
    storage.write_json(path, document)
    return plan["outbox"]


DESTINATIONS = ("pinpoint", "customer_profiles", "personalize", "segment")


def summarize(day: dt.date, prepared: dict, segment: dict) -> dict:
    """What the day's activation wrote and sent, per destination, from its outbox; kept in
    <root>/reports/dt=D/activation/summary.json."""
    destinations = {}
    for destination in DESTINATIONS:
        outbox = zone(destination, day, "outbox")
        documents = [storage.read_json(p) for p in sorted(outbox.glob("*.json"))] if outbox.exists() else []
        files = [p for p in zone(destination, day).rglob("*") if p.is_file() and p.suffix in (".csv", ".jsonl")] \
            if zone(destination, day).exists() else []
        destinations[destination] = {
            "enabled": getattr(get_config().activation, destination).enabled,
            "files": len(files),
            "requests": sum(len(d["requests"]) for d in documents),
            "sent": sum(1 for d in documents if d["receipt"].get("sent")),
            "receipts": {d["name"]: d["receipt"].get("status") for d in documents},
            "location": storage.url_of(zone(destination, day)),
        }
    destinations["segment"]["messages"] = segment.get("messages", 0)
    summary = {"partition": day.isoformat(), "decision": prepared["decision"], "profiles": prepared["profiles"],
               "audiences": prepared["audiences"], "destinations": destinations}
    storage.write_json(storage.zone("reports", f"dt={day.isoformat()}", "activation", "summary.json"), summary)
    return summary
