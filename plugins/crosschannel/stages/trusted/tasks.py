"""retail_trusted's tasks, one function per task id, the same on both targets."""

from __future__ import annotations

import datetime as dt

from crosschannel.stages.trusted import events, features, merge, publish


def plan_merge(day: dt.date, run: str) -> list[dict]:
    """One merge job per table: the landed files in effect at the partition and the rendered SQL. Every job
    writes into candidates private to the run (`run`: the Airflow run id), so runs of one day never mix."""
    return merge.plan_merge(day, run)


def plan_identities(day: dt.date, run: str) -> list[dict]:
    """Plan the identity map job over the landed Segment day (the previous day's map carried on)."""
    return events.plan_identities(day, run)


def plan_events(day: dt.date, run: str) -> list[dict]:
    """Plan the typed events job over the flattened day and its identity map."""
    return events.plan_events(day, run)


def plan_gate_trusted(day: dt.date, run: str) -> list[dict]:
    """The gate job over every trusted candidate of the run."""
    return publish.plan_gate(day, publish.trusted_suites(day, run), "trusted", run)


def gate_trusted(day: dt.date, run: str) -> dict:
    """Publish every trusted candidate of the run only if its gate job found no critical failure."""
    return publish.gate_and_publish(day, publish.trusted_suites(day, run), "trusted", run, "data_docs")


def plan_derived(day: dt.date, run: str) -> list[dict]:
    """Plan the customer 360 and customer features jobs over the day's published trusted partitions."""
    return features.plan_derived(day, run)


def plan_gate_derived(day: dt.date, run: str) -> list[dict]:
    """The gate job over the run's customer 360 and features."""
    return publish.plan_gate(day, publish.derived_suites(day, run), "derived", run)


def gate_derived(day: dt.date, run: str) -> dict:
    """Publish the run's customer 360 and features only if their gate job found no critical failure."""
    return publish.gate_and_publish(day, publish.derived_suites(day, run), "derived", run, "data_docs_derived")


def publish_trusted(day: dt.date) -> dict:
    """The partition, rows and gate outcomes the trusted and features asset events carry."""
    return publish.summarize(day)
