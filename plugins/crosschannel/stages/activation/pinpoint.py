"""Amazon Pinpoint: one import job per audience, defining (then updating) its segment."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import audiences, consent, outbox
from crosschannel.stages.activation.outbox import PINPOINT, plan_request, score_columns, text, write_parts

if TYPE_CHECKING:
    import pandas as pd

def pinpoint_endpoints(audience: str, members: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """The audience's treatment members as Pinpoint endpoints: EMAIL and SMS for the contacts consent lets
    leave (crosschannel.stages.activation.consent); the header in Pinpoint's dot notation."""
    import pandas as pd

    treated = members[(members["audience"] == audience) & (members["assignment"] == "treatment")]
    frame = consent.contacts(treated[["customer_id", "detail"]].merge(profile, on="customer_id", how="inner"),
                             PINPOINT)
    frames = []
    for channel, field in (("EMAIL", "email"), ("SMS", "phone")):
        chosen = frame[frame[field].notna()]
        endpoints = pd.DataFrame({
            "ChannelType": channel,
            "Address": chosen[field],
            "Id": channel.lower() + "-" + chosen["customer_id"].astype(str),
            "User.UserId": chosen["customer_id"].astype(str),
            "User.UserAttributes.FirstName": text(chosen["first_name"]),
            "User.UserAttributes.LoyaltyTier": text(chosen["loyalty_tier"]),
            "Attributes.audience": audience,
            "Attributes.audience_detail": text(chosen["detail"]),
            **{f"Attributes.{column}": text(chosen[column]) for column in score_columns()},
            "OptOut": "NONE",
        })
        frames.append(endpoints)
    return pd.concat(frames, ignore_index=True).sort_values(["User.UserId", "ChannelType"], kind="stable")


def plan_pinpoint(day: dt.date, decision: dict, members: pd.DataFrame, profile: pd.DataFrame) -> list[dict]:
    settings = get_config().activation.pinpoint
    plans = []
    for audience in audiences.names():
        if not outbox.to_plan(PINPOINT, day, audience, decision):
            continue
        endpoints = pinpoint_endpoints(audience, members, profile)
        folder = paths.delivery(PINPOINT, day, decision["attempt"], audience)
        files = write_parts(folder, endpoints, settings.max_file_mb * 1024 * 1024)
        segment_id = outbox.read_state(PINPOINT, audience).get("segment_id")
        request = {"Format": "CSV", "S3Url": storage.url_of(folder) + "/", "RoleArn": settings.role_arn,
                   "DefineSegment": True, "RegisterEndpoints": True}
        request.update({"SegmentId": segment_id} if segment_id else {"SegmentName": f"crosschannel-{audience}"})
        requests = [outbox.validate("pinpoint", "CreateImportJob",
                                        {"ApplicationId": settings.application_id, "ImportJobRequest": request})]
        if endpoints.empty:
            decision_here = {**decision, "send": False, "reason": f"audience {audience} has no reachable "
                                                                 "treatment member today: nothing to import"}
        else:
            decision_here = decision
        plan = plan_request(PINPOINT, day, audience, requests, decision_here, files, endpoints=len(endpoints))
        if decision_here["send"]:
            plans.append(plan)
    return plans
