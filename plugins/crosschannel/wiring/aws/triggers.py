"""The deferrable wait of the operators of crosschannel.wiring.aws (activation imports and uploads, Personalize
training and batch inference: every kind of `hooks.JOBS`), run in the triggerer.

`ActivationJobTrigger.serialize` names this module; triggers recorded before 2026-12 name
`crosschannel.aws_activation.ActivationJobTrigger`, which re-exports it.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from crosschannel.wiring.aws.hooks import JOBS, ActivationJobFailed, ident


class ActivationJobTrigger(BaseTrigger):
    """Waits for an activation job in the triggerer (the deferrable operators' wait): the same JobKind, the
    describe call made in a thread, the answer or the failure handed back to the task. Every event carries the
    job's ids: the task resumes from the event alone (dag.test() in Airflow 3.3.2 resumes with the event only,
    dropping the kwargs the task deferred with)."""

    def __init__(self, *, kind: str, ids: dict, interval: float, timeout: float, aws_conn_id: str | None,
                 region_name: str | None) -> None:
        super().__init__()
        self.kind, self.ids, self.interval, self.timeout = kind, ids, interval, timeout
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"kind": self.kind, "ids": self.ids, "interval": self.interval, "timeout": self.timeout,
                 "aws_conn_id": self.aws_conn_id, "region_name": self.region_name})

    def hook(self):
        return JOBS[self.kind].hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    async def run(self):
        import asyncio
        import json

        job_kind, hook = JOBS[self.kind], self.hook()
        deadline = time.monotonic() + self.timeout
        while True:
            answer = await asyncio.to_thread(job_kind.describe, hook, self.ids)
            try:
                if job_kind.check(answer, self.ids):
                    yield TriggerEvent({"status": "success", "ids": self.ids,
                                        "job": json.loads(json.dumps(answer, default=str))})
                    return
            except ActivationJobFailed as exc:
                yield TriggerEvent({"status": "failed", "ids": self.ids, "message": str(exc)})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({"status": "timeout", "ids": self.ids,
                                    "message": f"{job_kind.what} {ident(self.ids)} still {job_kind.status(answer)} "
                                               f"after {self.timeout:.0f} s"})
                return
            await asyncio.sleep(self.interval)
