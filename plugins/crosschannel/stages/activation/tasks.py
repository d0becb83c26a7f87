"""audience_activation's tasks, one function per task id, the same on both targets. A disabled destination
(`activation.<destination>.enabled`) plans nothing, so its load task has nothing to send.

Plan, then send: every destination's plan task (files, validated requests, preconditions) finishes before any
load task starts. A destination whose precondition fails (DestinationNotReady) fails the run before anything is
sent, or, with `activation.skip_unready_destinations`, is recorded as skipped while the others send.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from crosschannel.core.config import get_config
from crosschannel.core.source_settings import NEEDS
from crosschannel.stages.activation import (
    audiences,
    customer_profiles,
    outbox,
    personalize,
    pinpoint,
    profiles,
    recommended,
    segment,
)

log = logging.getLogger(__name__)


def plan_audiences(day: dt.date) -> list[dict]:
    """One SQL job per audience file over the day's scores, features and trusted state."""
    return audiences.plan(day)


def prepare_activation(day: dt.date, *, force: bool, backfill: bool, run: str) -> dict:
    """Count treatment and control, commit the day's profiles, and decide whether this run sends."""
    return profiles.prepare(day, profiles.decide(day, force=force, backfill=backfill, run=run))


def _planned(destination: str, day: dt.date, prepared: dict, make: Callable[[], list[dict]]) -> list[dict]:
    """The destination's plans; [] when it is disabled, needs a source the retailer has not, or is not ready and
    configured to be skipped (the last two recorded as skipped, with the reason)."""
    cfg = get_config()
    if not getattr(cfg.activation, destination).enabled:
        return []
    reason = cfg.sources.missing(NEEDS[destination], destination)
    try:
        if not reason:
            return make()
    except outbox.DestinationNotReady as exc:
        if not cfg.activation.skip_unready_destinations:
            raise
        reason = f"{exc} (activation.skip_unready_destinations)"
    log.warning("%s skipped for %s: %s", destination, day, reason)
    outbox.write_outbox(destination, day, prepared["decision"]["attempt"], "skipped", [],
                        {"status": "skipped", "sent": False, "delivered": False, "reason": reason})
    return []


def plan_recommendations(day: dt.date, prepared: dict) -> list[dict]:
    """The batch inference jobs of the day: the audiences' reachable members and the catalogue."""
    plans, reason = recommended.plan(day, prepared["decision"], profiles.read_profiles(day),
                                     recommended.catalogue(day))
    if reason:
        log.warning("recommendations for %s: %s", day, reason)
    return plans


def commit_recommendations(day: dt.date, plans: list[dict]) -> dict:
    """Read the jobs' output, drop what members bought recently, join the catalogue, commit the day's lists."""
    return recommended.commit(day, list(plans))


def plan_pinpoint(day: dt.date, prepared: dict) -> list[dict]:
    """Write each audience's Pinpoint endpoint files and its CreateImportJob request."""
    return _planned(outbox.PINPOINT, day, prepared, lambda: pinpoint.plan_pinpoint(
        day, prepared["decision"], audiences.read(day), profiles.read_profiles(day)))


def plan_customer_profiles(day: dt.date, prepared: dict, run: str) -> list[dict]:
    """Write the profiles upload file and the upload job and segment definition requests."""
    return _planned(outbox.PROFILES, day, prepared, lambda: customer_profiles.plan_customer_profiles(
        day, prepared["decision"], profiles.read_profiles(day), run))


def plan_personalize(day: dt.date, force: bool, run: str) -> list[dict]:
    """Choose FULL or INCREMENTAL per dataset and plan the interactions, items and users SQL jobs."""
    if not get_config().runs("personalize"):
        return []  # export_personalize records why when a source is missing
    return personalize.plan_personalize(day, force, run)


def export_personalize(day: dt.date, prepared: dict, run: str) -> list[dict]:
    """Check the datasets' files (the jobs' findings), copy them into the attempt, and plan the imports."""
    return _planned(outbox.PERSONALIZE, day, prepared,
                    lambda: personalize.export_personalize(day, prepared["decision"], run))


def plan_segment(day: dt.date, prepared: dict) -> dict:
    """Write and check the identify messages of the customers whose traits changed."""
    plans = _planned(outbox.SEGMENT, day, prepared,
                     lambda: [segment.plan(day, prepared["decision"], profiles.read_profiles(day))])
    return plans[0] if plans else {}


def publish_segment(plan: dict) -> dict:
    """Send the planned identify calls through the Segment library (or record why not)."""
    return segment.publish(plan)


def publish_activation(day: dt.date, prepared: dict, segment_outcome: dict, recommendations: dict) -> dict:
    """The partition, the audience counts, the recommendations and what was sent, for the activation asset event."""
    return profiles.summarize(day, prepared, segment_outcome, recommendations)
