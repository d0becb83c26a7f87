"""Alerts: stakeholders hear when a DAG run misses its deadline, on-call hears when a task fails.

Channels are chosen in `alerts` of the configuration (smtp, slack, sns) and sent through the providers'
notifiers: SmtpNotifier (the `alerts.smtp_conn_id` connection), SlackWebhookNotifier (`alerts.slack_conn_id`),
SnsNotifier (`alerts.sns_topic_arn`). `deadline_missed` is the AsyncCallback every DAG's DeadlineAlert names:
it runs in the triggerer, which imports it from this package (plugins/ is on its sys.path; runs recorded
before 2026-12 name it `crosschannel.notify.deadline_missed`, which re-exports it). `FailureNotifier`
is every task's on_failure_callback.

Cheap to import: the providers are imported when a message is sent.

SNS: every Publish request is built here (`sns_publish_request`, the very request SnsNotifier sends) and checked
(`check_publish`) before a notifier is made: strictly on the aws target, so a request SNS would refuse fails here,
naming the member. The builder never builds one: the subject is deliberately sanitized and shortened to fit SNS's
rule (line breaks and control characters become spaces, at most 99 characters) and an over-long message is
truncated to fit the message size limit, each saying so in the text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from typing import Any

from airflow.sdk import BaseNotifier

from crosschannel.core import awsapi, paths
from crosschannel.core.config import get_config
from crosschannel.core.partition import parse_day, partition_day
from crosschannel.wiring.deadlines import PartitionPromise

log = logging.getLogger(__name__)


def notifiers_for(channels: tuple[str, ...], emails: tuple[str, ...], subject: str, text: str) -> list:
    """The providers' notifiers for `channels`, each carrying the finished message (no templates left)."""
    alerts = get_config().alerts
    notifiers = []
    for channel in channels:
        if channel == "smtp":
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            html = "<pre>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
            notifiers.append(SmtpNotifier(to=list(emails), from_email=alerts.from_email, subject=subject,
                                          html_content=html, smtp_conn_id=alerts.smtp_conn_id))
        elif channel == "slack":
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            notifiers.append(SlackWebhookNotifier(slack_webhook_conn_id=alerts.slack_conn_id,
                                                  text=f"*{subject}*\n{text}"))
        elif channel == "sns":
            from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

            cfg = get_config()
            sns_subject_, sns_text = sns_subject(subject), sns_message(text)
            check_publish(sns_publish_request(alerts.sns_topic_arn, sns_subject_, sns_text),
                          strict=cfg.target == "aws")
            notifiers.append(SnsNotifier(aws_conn_id=cfg.aws.conn_id, region_name=cfg.aws.region,
                                         target_arn=alerts.sns_topic_arn, subject=sns_subject_, message=sns_text))
    return notifiers


# ---- SNS Publish: what the botocore model does not say. Publish's documentation (the installed model's `Subject`
# and `Message` docs; https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sns/aws.sdk.kotlin.services.sns.model/
# -publish-request/subject.html and .../-publish-request/message.html): "Subjects must be UTF-8 text with no line
# breaks or control characters, and less than 100 characters long"; a message is at most 256 KiB (262,144 bytes)
# unless the topic raises its MaximumMessageSize. The model carries neither rule as a constraint, so
# awsapi.check alone would let both through.
SUBJECT_MAX = 99
MESSAGE_MAX_BYTES = 262_144
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TRUNCATED = "\n[truncated to fit SNS's 256 KiB message limit]"


def sns_subject(subject: str) -> str:
    """The subject as SNS takes it, on purpose: valid UTF-8, every line break and control character a space,
    runs of spaces one, at most SUBJECT_MAX characters (cut with an ellipsis)."""
    text = " ".join(_CONTROL.sub(" ", subject.encode("utf-8", "replace").decode()).split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "\u2026"


def _message_bytes(text: str) -> int:
    return len(json.dumps({"default": text}).encode())  # SnsNotifier sends MessageStructure json


def sns_message(text: str) -> str:
    """The message, cut (and marked) when the JSON SnsNotifier sends would pass MESSAGE_MAX_BYTES."""
    text = text.encode("utf-8", "replace").decode()
    if _message_bytes(text) <= MESSAGE_MAX_BYTES:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest head that fits with the marker
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _message_bytes(text[:middle] + _TRUNCATED) <= MESSAGE_MAX_BYTES else \
            (low, middle - 1)
    return text[:low] + _TRUNCATED


def sns_publish_request(target_arn: str, subject: str, text: str) -> dict:
    """The Publish request SnsNotifier sends (the provider's own builder: TargetArn, MessageStructure json)."""
    from airflow.providers.amazon.aws.hooks.sns import _build_publish_kwargs

    return _build_publish_kwargs(target_arn, text, subject)


def check_publish(params: dict, *, strict: bool = True) -> dict:
    """awsapi.check of a Publish request plus the documented rules the model lacks (above); strict raises
    AwsRequestError naming the member, otherwise the problems come back in `refused`."""
    checked = awsapi.check("sns", "Publish", params, strict=strict)
    problems = []
    subject = params.get("Subject")
    if isinstance(subject, str) and len(subject) > SUBJECT_MAX:
        problems.append(f"Publish.Subject: {len(subject)} characters, SNS takes fewer than 100")
    if isinstance(subject, str) and _CONTROL.search(subject):
        problems.append(f"Publish.Subject: {subject[:40]!r}... has a line break or control character, "
                        "which SNS refuses")
    size = len(str(params.get("Message", "")).encode())
    if size > MESSAGE_MAX_BYTES:
        problems.append(f"Publish.Message: {size:,} bytes is above SNS's limit of {MESSAGE_MAX_BYTES:,}")
    if problems and strict:
        raise awsapi.AwsRequestError(f"sns Publish: AWS would refuse the request: {'; '.join(problems)}")
    return {**checked, "refused": checked["refused"] + problems}


# The daily chain in order: a run that failed or never started holds up every DAG after it.
DAILY_CHAIN = ("retail_ingest", "retail_trusted", "propensity_scoring", "audience_activation", "campaign_readout")
_STATUS = {  # the run's state when its deadline passed: what the stakeholders are told
    "failed": ("FAILED", "The run failed (on-call was told which task and why). Nothing of this day after it is "
               "delivered until the cause is fixed and the run is cleared."),
    "queued": ("NEVER STARTED", "The run is queued and has not started: another run of this DAG may still be "
               "going (one at a time), the DAG may be paused, or the scheduler may be down."),
    "running": ("LATE", "The run is still running."),
    "success": ("FINISHED LATE", "The run finished after its deadline."),
}


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI (`[api] base_url`)."""
    from urllib.parse import quote

    return f"{paths.airflow_ui()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def deadline_message(dag_id: str, context: dict | None) -> tuple[str, str]:
    """Subject and text for a missed deadline: whether the run is late, failed or never started, what it
    promised, the link to the run and the DAGs after it in the chain that wait on it."""
    alerts = get_config().alerts
    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    partition = dag_run.get("partition_key") or "(none)"
    state = str(dag_run.get("state") or "?")
    status, meaning = _STATUS.get(state, (state.upper(), f"The run is {state}."))
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or ""
    promise = alerts.promise(dag_id)
    lines = [
        f"DAG: {dag_id}",
        f"Partition: {partition}",
        f"Status: {status}. {meaning}",
        f"Promised: {promise or '(none)'} {alerts.timezone}" + (f", {_local(promise, partition)}" if promise else ""),
        f"Deadline: {deadline.get('deadline_time', '?')} (the day's promise; for a run created more than a day "
        "after it, the same allowance counted from its creation)",
        f"Run: {run_id or '(unknown)'} ({dag_run.get('run_type', '?')}), queued {dag_run.get('queued_at') or '-'}, "
        f"started {dag_run.get('start_date') or '-'}, ended {dag_run.get('end_date') or '-'}",
        f"Open it: {run_url(dag_id, run_id) if run_id else '(no run id)'}",
    ]
    if state != "success" and dag_id in DAILY_CHAIN:
        after = DAILY_CHAIN[DAILY_CHAIN.index(dag_id) + 1:]
        if after:
            lines.append("Waiting on it: " + ", ".join(f"{d} (promised {alerts.deadlines.get(d, '-')})" for d in after))
    lines.append("See the runbook in the bundle's README.")
    return f"[crosschannel] {dag_id} missed its deadline for partition {partition}: {status}", "\n".join(lines)


def _local(promise, partition: str) -> str:
    try:
        day = parse_day(partition, "deadline message")
    except ValueError:
        return "for no valid day"
    alerts = get_config().alerts
    return f"for this day {promise.due(day, alerts.zone).astimezone(alerts.zone):%Y-%m-%d %H:%M %Z}"


async def deadline_missed(dag_id: str, context: dict | None = None, **_: Any) -> str:
    """AsyncCallback target of the DAGs' DeadlineAlerts: tell the stakeholders on every configured channel.
    Returns what was sent (the triggerer stores it as the callback's output, a string); a channel that fails
    is logged and raised after the others ran."""
    alerts = get_config().alerts
    subject, text = deadline_message(dag_id, context)
    notifiers = notifiers_for(alerts.stakeholders, alerts.stakeholder_emails, subject, text)
    if not notifiers:
        log.warning("%s (no stakeholder channel configured in alerts.stakeholders)", subject)
        return "no stakeholder channel configured"
    results = await asyncio.gather(*(n.async_notify(context or {}) for n in notifiers), return_exceptions=True)
    failed = [(channel, r) for channel, r in zip(alerts.stakeholders, results, strict=True) if isinstance(r, Exception)]
    for channel, error in failed:
        log.error("deadline alert over %s failed: %s", channel, error)
    if failed:
        raise RuntimeError(f"deadline alert for {dag_id}: {', '.join(c for c, _ in failed)} failed") from failed[0][1]
    return "sent to " + ", ".join(alerts.stakeholders)


def _parsed_by_airflow_dags_test() -> bool:
    """The DAG file is being parsed for `airflow dags test`: Airflow 3.3.2's dag.test() schedules an in-memory DAG
    whose deadline alerts are not the metadata-DB rows DagRun.update_state looks up, and ends, after every task
    ran, with "AttributeError: 'dict' object has no attribute 'hex'". Such a test run gets no alert (as
    crosschannel.wiring.defaults.test_run does); the dag-processor and the scheduler parse with their own argv."""
    import os
    import sys

    program = sys.argv[0].replace(os.sep, "/")
    return (program.endswith("/airflow") or program == "airflow" or program.endswith("airflow/__main__.py")) \
        and sys.argv[1:3] == ["dags", "test"]


def deadline_alert(dag_id: str):
    """The DAG's DeadlineAlert: its promise in `alerts.deadlines` for the run's partition day
    (crosschannel.wiring.deadlines); None when the configuration promises nothing for the DAG, or under
    `airflow dags test` (see _parsed_by_airflow_dags_test)."""
    from airflow.sdk import AsyncCallback, DeadlineAlert

    if get_config().alerts.promise(dag_id) is None or _parsed_by_airflow_dags_test():
        return None
    return DeadlineAlert(reference=PartitionPromise(), interval=dt.timedelta(0),
                         callback=AsyncCallback(deadline_missed, kwargs={"dag_id": dag_id}))


class FailureNotifier(BaseNotifier):
    """on_failure_callback: tell on-call which DAG, task and partition failed, with the log's URL."""

    template_fields = ()

    def notify(self, context) -> None:
        alerts = get_config().alerts
        subject, text = failure_message(context)
        notifiers = notifiers_for(alerts.oncall, alerts.oncall_emails, subject, text)
        if not notifiers:
            log.warning("%s (no on-call channel configured in alerts.oncall)", subject)
        for notifier in notifiers:
            notifier.notify(context)


def failure_message(context) -> tuple[str, str]:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or context["dag"].dag_id
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    try:
        partition = partition_day(context).isoformat()
    except ValueError:
        partition = "(none)"
    subject = f"[crosschannel] {dag_id}.{task_id} failed for partition {partition}"
    exception = context.get("exception")
    lines = [
        f"DAG: {dag_id}",
        f"Task: {task_id}" + (f" [map index {map_index}]" if map_index not in (None, -1) else ""),
        f"Partition: {partition}",
        f"Run: {context.get('run_id', '?')}, try {getattr(ti, 'try_number', '?')}",
        f"Log: {getattr(ti, 'log_url', '(no URL)')}",
        f"Error: {exception!s}"[:2000] if exception else "Error: (see the log)",
    ]
    return subject, "\n".join(lines)
