"""campaign_readout's tasks, one function per task id, the same on both targets."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from crosschannel.core.config import ConfigError, get_config
from crosschannel.stages.readouts import report, sends

log = logging.getLogger(__name__)


def plan_readouts(day: dt.date) -> list[dict]:
    """The SQL job summing the treatment and control outcomes of the sends due a readout (none: no job)."""
    return sends.plan(day)


def read_out(day: dt.date, plans: list[dict]) -> dict:
    """Compare treatment with control for every due send and commit the readouts' JSON and HTML."""
    due = sends.due(day)
    rows = sends.groups(day) if plans else []
    return report.commit(day, report.build(day, due, rows))


def send_digest(day: dt.date, context, notifiers: Callable[..., list]) -> dict:
    """Send the readouts due on the day to the stakeholders on `readouts.digest`'s channels (none by default).
    `notifiers(channels, emails, subject, text)` makes the providers' notifiers (crosschannel.wiring.notify)."""
    cfg = get_config()
    channels = cfg.readouts.digest
    if not channels:
        return {"sent": False, "reason": "no channel in readouts.digest"}
    if "smtp" in channels and not cfg.alerts.stakeholder_emails:
        raise ConfigError("readouts.digest: smtp is chosen but alerts.stakeholder_emails (the recipients) is empty")
    if "sns" in channels and not cfg.alerts.sns_topic_arn:
        raise ConfigError("readouts.digest: sns is chosen but alerts.sns_topic_arn is empty")
    result = report.read(day)
    if not result["readouts"]:
        return {"sent": False, "reason": f"no readout due on {day}"}
    subject, text = report.digest(result)
    for notifier in notifiers(channels, cfg.alerts.stakeholder_emails, subject, text):
        notifier.notify(context)
    log.info("%s: sent over %s", subject, ", ".join(channels))
    return {"sent": True, "channels": list(channels), "subject": subject}
