"""audience_activation's tasks, one function per task id, the same on both targets. A disabled destination
(`activation.<destination>.enabled`) plans nothing, so its load task has nothing to send."""

from __future__ import annotations

import datetime as dt

from crosschannel.core.config import get_config
from crosschannel.stages.activation import audiences, customer_profiles, personalize, pinpoint, profiles, segment


def plan_audiences(day: dt.date) -> list[dict]:
    """One SQL job per audience file over the day's scores, features and trusted state."""
    return audiences.plan(day)


def prepare_activation(day: dt.date, *, force: bool, backfill: bool) -> dict:
    """Count treatment and control, commit the day's profiles, and decide whether this run sends."""
    return profiles.prepare(day, profiles.decide(day, force=force, backfill=backfill))


def plan_pinpoint(day: dt.date, prepared: dict) -> list[dict]:
    """Write each audience's Pinpoint endpoint files and its CreateImportJob request."""
    if not get_config().activation.pinpoint.enabled:
        return []
    return pinpoint.plan_pinpoint(day, prepared["decision"], audiences.read(day), profiles.read_profiles(day))


def plan_customer_profiles(day: dt.date, prepared: dict, run: str) -> list[dict]:
    """Write the profiles upload file and the upload job and segment definition requests."""
    if not get_config().activation.customer_profiles.enabled:
        return []
    return customer_profiles.plan_customer_profiles(day, prepared["decision"], profiles.read_profiles(day), run)


def plan_personalize(day: dt.date) -> list[dict]:
    """Choose FULL or INCREMENTAL per dataset and plan the interactions, items and users SQL jobs."""
    if not get_config().activation.personalize.enabled:
        return []
    return personalize.plan_personalize(day)


def export_personalize(day: dt.date, prepared: dict, run: str) -> list[dict]:
    """Write the datasets as Personalize CSVs, check the minimum data, and plan the import jobs."""
    if not get_config().activation.personalize.enabled:
        return []
    return personalize.export_personalize(day, prepared["decision"], run)


def publish_segment(day: dt.date, prepared: dict) -> dict:
    """Send identify calls with the changed traits through the Segment library (or record why not)."""
    if not get_config().activation.segment.enabled:
        return {"status": "disabled"}
    built = segment.build(day, profiles.read_profiles(day))
    return segment.publish(day, prepared["decision"], built)


def publish_activation(day: dt.date, prepared: dict, segment_outcome: dict) -> dict:
    """The partition, the audience counts and what was sent, for the activation asset event."""
    return profiles.summarize(day, prepared, segment_outcome)
