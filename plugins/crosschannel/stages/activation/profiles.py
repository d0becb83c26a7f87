"""The day's activation as a whole: whether a run may send, the per-customer profile every destination reads
(<root>/activation/profiles/dt=D/) and the summary of what was written and sent.

A run sends only for the newest scored partition, and never from a backfill, unless its `force_publish` Param
is set: a backfill rebuilds the files and the validated requests, and sends nothing. What an earlier attempt of
the day delivered is not sent again unless forced either.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import audiences, outbox, recommended
from crosschannel.stages.activation.outbox import DESTINATIONS, new_attempt

if TYPE_CHECKING:
    import pandas as pd

def _newest_scored_partition() -> str | None:
    model = next(iter(get_config().models.specs))
    days = [d for d in paths.partition_days(paths.scores_base(model))
            if storage.is_committed(paths.scores(model, d, "scores"))]
    return max(days).isoformat() if days else None


def decide(day: dt.date, *, force: bool, backfill: bool, run: str) -> dict:
    """Whether this run sends: only for the newest scored partition, never from a backfill, unless forced; and
    the run's delivery attempt (crosschannel.stages.activation.outbox)."""
    newest = _newest_scored_partition()
    decided = {"newest_partition": newest, "force": force, "attempt": new_attempt(run)}
    if force:
        return {"send": True, "reason": "force_publish is set", **decided}
    if backfill:
        return {"send": False, "reason": "a backfill run rebuilds files and sends nothing (set force_publish to send)",
                **decided}
    if newest is not None and day.isoformat() < newest:
        return {"send": False, "reason": f"partition {day} is older than the newest scored partition {newest}: "
                                         "files rebuilt, nothing sent (set force_publish to send)", **decided}
    return {"send": True, "reason": "the newest partition", **decided}


def profiles(day: dt.date, members: pd.DataFrame) -> pd.DataFrame:
    """One row per scored customer: `user_id` (the id that leaves: the retailer's external_id, else the customer id
    as text), contacts and tier from the trusted state, each model's probability, decile and reasons, and the
    audiences the customer is a *treatment* member of (control members are never sent)."""
    frame = sqljobs.read_partition(paths.trusted("customers", day)).to_pandas()[
        ["customer_id", "external_id", "first_name", "last_name", "email", "phone", "email_opt_in", "sms_opt_in",
         "loyalty_tier"]]
    scored = None
    for model in get_config().models.specs:
        scores = sqljobs.read_partition(paths.scores(model, day, "scores")).to_pandas()
        scores = scores[["customer_id", "probability", "decile", "reason_1", "reason_2", "reason_3"]]
        scores = scores.rename(columns={c: f"{model}_{c}" for c in scores.columns if c != "customer_id"})
        scored = scores if scored is None else scored.merge(scores, on="customer_id", how="outer")
    frame = scored.merge(frame, on="customer_id", how="left")
    frame.insert(1, "user_id", frame.pop("external_id").fillna(frame["customer_id"].astype(str)))
    treated = members[members["assignment"] == "treatment"].groupby("customer_id")["audience"].agg(sorted)
    frame["audiences"] = frame["customer_id"].map(treated).apply(lambda v: v if isinstance(v, list) else [])
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def profiles_dir(day: dt.date):
    return paths.activation("profiles", day)


def prepare(day: dt.date, decision: dict) -> dict:
    """Check the day's audiences and commit the profile table every destination reads."""
    import pyarrow as pa

    members = audiences.read(day)
    counts = audiences.summarize(day, members)
    frame = profiles(day, members)
    sqljobs.write_partition(profiles_dir(day), pa.Table.from_pandas(frame, preserve_index=False))
    return {"partition": day.isoformat(), "audiences": counts, "profiles": len(frame), "decision": decision}


def read_profiles(day: dt.date) -> pd.DataFrame:
    """The day's profiles, each with its `recommended` products (crosschannel.stages.activation.recommended; [] for
    a customer without a list). What may leave of them is consent.deliverable_recommendations'."""
    frame = sqljobs.read_partition(profiles_dir(day)).to_pandas()
    frame["audiences"] = frame["audiences"].map(list)
    found = recommended.lists(day)
    frame["recommended"] = frame["customer_id"].map(lambda customer: found.get(int(customer), []))
    return frame


def summarize(day: dt.date, prepared: dict, segment: dict, recommendations: dict | None = None) -> dict:
    """What this attempt wrote and sent per destination, from its outbox, and what earlier attempts of the day
    delivered (not sent again); kept in <root>/reports/dt=D/activation/summary.json."""
    attempt = prepared["decision"]["attempt"]
    destinations = {}
    for destination in DESTINATIONS:
        folder = paths.delivery(destination, day, attempt)
        documents = outbox.documents(destination, day, attempt)
        files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".csv", ".jsonl")] \
            if folder.exists() else []
        planned = {d["name"] for d in documents}
        skipped = [d["receipt"]["reason"] for d in documents if d["name"] == "skipped"]
        destinations[destination] = {
            "enabled": getattr(get_config().activation, destination).enabled,
            "files": len(files),
            "requests": sum(len(d["requests"]) for d in documents),
            "sent": sum(1 for d in documents if d["receipt"].get("sent")),
            "delivered": sum(1 for d in documents if d["receipt"].get("delivered")),
            "receipts": {d["name"]: d["receipt"].get("status") for d in documents},
            "already_delivered": {name: d["attempt"] for name, d in outbox.delivered_documents(destination, day).items()
                                  if name not in planned},
            "location": storage.url_of(folder),
            **({"skipped": skipped[0]} if skipped else {}),
        }
    destinations["segment"]["messages"] = segment.get("messages", 0)
    summary = {"partition": day.isoformat(), "decision": prepared["decision"], "profiles": prepared["profiles"],
               "audiences": prepared["audiences"], "audiences_skipped": audiences.skipped(),
               "recommendations": recommendations or {},
               "destinations": destinations}
    storage.write_json(paths.reports(day, "activation", "summary.json"), summary)
    return summary
