"""Errors that a retry cannot fix: bad or missing input data, a failed gate, a request that does not match the
API. They fail the task at once, without the default retries (Airflow's AirflowFailException), so on-call hears
of a failed gate within seconds, not after two backed-off retries. Transient failures (throttling, 5xx, a
dropped connection, a job AWS reports failed) keep the ordinary exceptions and their retries.

Every stage's data error derives from `DataError`; each also keeps the built-in base it always had.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException


class DataError(AirflowFailException):
    """Input or output data the run cannot use; the message names the file, table, column or key and what was
    expected. Fix the data (or the config), then clear the task."""


class MissingPartition(DataError, FileNotFoundError):
    """A published partition the run reads is not there: run the upstream stage for that day first, then clear
    this run (retrying before that cannot help)."""
