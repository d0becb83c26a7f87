"""The local target's delivery of an activation plan: nothing leaves the machine; the validated requests and
files in the outbox are the delivery."""

from __future__ import annotations

from crosschannel.stages.activation.outbox import record_delivery


def load(plan: dict) -> str:
    """Record that the plan stays in the outbox, and move the destination's state on as a successful import
    would (so the next day's Personalize load is INCREMENTAL, as on aws)."""
    record_delivery(plan, {"status": "outbox", "sent": False,
                           "reason": "local target: the validated requests and files are the delivery"})
    return plan["outbox"]
