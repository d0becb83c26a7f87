"""Alerts: stakeholders hear when a DAG run misses its deadline, on-call hears when a task fails.

Channels are chosen in `alerts` of the configuration (smtp, slack, sns) and sent through the providers'
notifiers: SmtpNotifier (the `alerts.smtp_conn_id` connection), SlackWebhookNotifier (`alerts.slack_conn_id`),
SnsNotifier (`alerts.sns_topic_arn`). `deadline_missed` is the AsyncCallback every DAG's DeadlineAlert names:
it runs in the triggerer, which imports it from this package (plugins/ is on its sys.path; runs recorded
before 2026-12 name it `crosschannel.notify.deadline_missed`, which re-exports it). `FailureNotifier`
is every task's on_failure_callback.

Cheap to import: the providers are imported when a message is sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from airflow.sdk import BaseNotifier

from crosschannel.core.config import get_config
from crosschannel.core.partition import partition_day, run_partition
from crosschannel.wiring.deadlines import PartitionDayEnd

log = logging.getLogger(__name__)


def _notifiers(channels: tuple[str, ...], emails: tuple[str, ...], subject: str, text: str) -> list:
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
            notifiers.append(SnsNotifier(aws_conn_id=cfg.aws.conn_id, region_name=cfg.aws.region,
                                         target_arn=alerts.sns_topic_arn, subject=subject[:100], message=text))
    return notifiers


def _partition_of(dag_run: dict) -> str:
    return run_partition(dag_run.get("partition_key"), dag_run.get("conf")) or "(none)"


def deadline_message(dag_id: str, minutes: float, context: dict | None) -> tuple[str, str]:
    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    partition = _partition_of(dag_run)
    subject = f"[crosschannel] {dag_id} missed its deadline for partition {partition}"
    lines = [
        f"DAG: {dag_id}",
        f"Partition: {partition}",
        f"Run: {dag_run.get('dag_run_id') or dag_run.get('run_id') or '(unknown)'} ({dag_run.get('run_type', '?')}), "
        f"state {dag_run.get('state', '?')}",
        f"Queued at: {dag_run.get('queued_at', '?')}",
        f"Deadline: {deadline.get('deadline_time', '?')} ({minutes:g} minutes after the partition's day ended, "
        "or after the run was created when later)",
        "The run has not finished: the day's audiences may be late. See the runbook in the bundle's README.",
    ]
    return subject, "\n".join(lines)


async def deadline_missed(dag_id: str, minutes: float, context: dict | None = None, **_: Any) -> str:
    """AsyncCallback target of the DAGs' DeadlineAlerts: tell the stakeholders on every configured channel.
    Returns what was sent (the triggerer stores it as the callback's output, a string); a channel that fails
    is logged and raised after the others ran."""
    alerts = get_config().alerts
    subject, text = deadline_message(dag_id, minutes, context)
    notifiers = _notifiers(alerts.stakeholders, alerts.stakeholder_emails, subject, text)
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


def deadline_alert(dag_id: str):
    """The DAG's DeadlineAlert: `alerts.deadline_minutes` after its partition's day ended (or after the run was
    created, when later: crosschannel.wiring.deadlines); None when the config has no entry for the DAG."""
    from airflow.sdk import AsyncCallback, DeadlineAlert

    minutes = get_config().alerts.deadline_minutes.get(dag_id)
    if minutes is None:
        return None
    return DeadlineAlert(reference=PartitionDayEnd(), interval=dt.timedelta(minutes=minutes),
                         callback=AsyncCallback(deadline_missed, kwargs={"dag_id": dag_id, "minutes": minutes}))


class FailureNotifier(BaseNotifier):
    """on_failure_callback: tell on-call which DAG, task and partition failed, with the log's URL."""

    template_fields = ()

    def notify(self, context) -> None:
        alerts = get_config().alerts
        subject, text = failure_message(context)
        notifiers = _notifiers(alerts.oncall, alerts.oncall_emails, subject, text)
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
