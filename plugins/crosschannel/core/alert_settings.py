"""The `alerts` section of the configuration (crosschannel.core.config.Config.alerts): who hears what on which
channels, and the stakeholders' promise per DAG ("day D's audiences are delivered by D+1 07:00" in the business
time zone), which every DAG's Deadline Alert holds the run to (crosschannel.wiring.deadlines).

Its own module because config.py is at its size limit; it imports nothing of the bundle (config imports it).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Channel = Literal["smtp", "slack", "sns"]
DAG_IDS = ("retail_ingest", "retail_trusted", "propensity_training", "propensity_scoring", "audience_activation",
           "campaign_readout")
_PROMISE = re.compile(r"^D\+(\d{1,2}) ([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


class Promise(NamedTuple):
    """`D+<days> <hh:mm[:ss]>`: the wall-clock time, in the business time zone, `days` days after the partition day."""

    days: int
    time: dt.time

    @classmethod
    def parse(cls, text: str, where: str) -> Promise:
        match = _PROMISE.match(str(text).strip())
        if not match:
            raise ValueError(f"{where}: {text!r} is not a promise of the form 'D+1 07:00' (days after the partition "
                             "day, then hh:mm or hh:mm:ss in alerts.timezone)")
        days, hours, minutes, seconds = match.groups()
        return cls(int(days), dt.time(int(hours), int(minutes), int(seconds or 0)))

    def due(self, day: dt.date, zone: dt.tzinfo) -> dt.datetime:
        """The promised moment for partition `day`, in UTC (daylight saving time included)."""
        local = dt.datetime.combine(day + dt.timedelta(days=self.days), self.time, tzinfo=zone)
        return local.astimezone(dt.UTC)

    def __str__(self) -> str:
        return f"D+{self.days} {self.time.isoformat(timespec='seconds' if self.time.second else 'minutes')}"


# When day D's run can start at the earliest, after D's end at midnight UTC (partitions are UTC days): the weekly
# training ticks at 04:00 UTC; every other DAG's run is created from midnight UTC on (the head's tick, then assets).
EARLIEST_START = {"propensity_training": dt.timedelta(hours=4)}


def _after_the_run_starts(dag_id: str, promise: Promise, timezone: str) -> None:
    """A promise due before day D's run can even start would alert every day at once (a business time zone ahead of
    UTC): refused, naming the earliest start in the business time zone. Checked in winter and in summer."""
    zone = zoneinfo.ZoneInfo(timezone)
    for day in (dt.date(2026, 1, 15), dt.date(2026, 7, 15)):
        start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC) + \
            EARLIEST_START.get(dag_id, dt.timedelta(0))
        if promise.due(day, zone) <= start:
            raise ValueError(f"deadlines.{dag_id}: {promise} in {timezone} is due before day D's run can start "
                             f"({start.astimezone(zone):%H:%M} on D+1 there, {start:%H:%M} UTC: partitions are UTC "
                             "days): promise a later time")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Alerts(_Section):
    # Who hears what, on which channels: stakeholders when a DAG misses its deadline, on-call when a task fails.
    stakeholders: tuple[Channel, ...] = ()
    oncall: tuple[Channel, ...] = ()
    smtp_conn_id: str = "smtp_default"            # host, port, login, password of the mail server
    from_email: str = "crosschannel@localhost"
    stakeholder_emails: tuple[str, ...] = ()
    oncall_emails: tuple[str, ...] = ()
    slack_conn_id: str = "slack_webhook_default"  # the incoming webhook (password: the webhook URL or token)
    sns_topic_arn: str = ""                       # aws target: the topic stakeholders and on-call subscribe to
    # The business time zone the promises are kept in (an IANA name such as Europe/London).
    timezone: str = "UTC"
    # Per DAG, by when day D's run has finished: "D+1 07:00" is 07:00 the day after D in `timezone`. A run created
    # after that moment (a backfill, a re-run, a manual run of a past day) gets the same allowance from its creation.
    deadlines: dict[str, str] = {"retail_ingest": "D+1 02:00", "retail_trusted": "D+1 04:00",
                                 "propensity_training": "D+1 10:00", "propensity_scoring": "D+1 05:00",
                                 "audience_activation": "D+1 07:00", "campaign_readout": "D+1 10:00"}

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "deadline_minutes" in data:
            raise ValueError("deadline_minutes: replaced by alerts.deadlines, a promise per DAG such as "
                             "'audience_activation: D+1 07:00' in alerts.timezone (420 minutes were D+1 07:00 UTC)")
        return data

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (for example UTC or Europe/London)") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> Alerts:
        unknown = set(self.deadlines) - set(DAG_IDS)
        if unknown:
            raise ValueError(f"deadlines: unknown DAG(s) {sorted(unknown)}, expected {list(DAG_IDS)}")
        for dag_id, text in self.deadlines.items():
            _after_the_run_starts(dag_id, Promise.parse(text, f"deadlines.{dag_id}"), self.timezone)
        for audience, emails in (("stakeholders", self.stakeholder_emails), ("oncall", self.oncall_emails)):
            if "smtp" in getattr(self, audience) and not emails:
                raise ValueError(f"{audience}: smtp is chosen but {audience.rstrip('s')}_emails is empty")
        if "sns" in (*self.stakeholders, *self.oncall) and not self.sns_topic_arn:
            raise ValueError("sns_topic_arn: required when sns is a channel")
        return self

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def promise(self, dag_id: str) -> Promise | None:
        """The DAG's promise, or None when the configuration makes none for it (no Deadline Alert)."""
        text = self.deadlines.get(dag_id)
        return None if text is None else Promise.parse(text, f"alerts.deadlines.{dag_id}")
