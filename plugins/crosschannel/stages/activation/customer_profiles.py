"""Amazon Connect Customer Profiles (Pinpoint's successor): one bulk upload job of every scored profile, and a
segment definition per audience."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import paths
from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.stages.activation import audiences, consent, outbox
from crosschannel.stages.activation.outbox import (
    PROFILES,
    ActivationError,
    plan_request,
    score_columns,
    sendable,
    text,
    write_parts,
)

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FIELDS = {  # column: (profile target, content type)
    "customer_id": ("_profile.AccountNumber", "STRING"),
    "first_name": ("_profile.FirstName", "NAME"),
    "last_name": ("_profile.LastName", "NAME"),
    "email": ("_profile.EmailAddress", "EMAIL_ADDRESS"),
    "phone": ("_profile.PhoneNumber", "PHONE_NUMBER"),
    "loyalty_tier": ("_profile.Attributes.loyalty_tier", "STRING"),
}


def profile_upload(profile: pd.DataFrame) -> pd.DataFrame:
    """Every scored customer: identity, the contacts consent lets leave, scores, and per audience
    `audience_<name>` true only for a treatment member (control members and non-members read false, so
    yesterday's membership does not linger)."""
    import pandas as pd

    contacts = consent.contacts(profile[["email", "phone", "email_opt_in", "sms_opt_in"]], PROFILES)
    frame = pd.DataFrame({
        "customer_id": profile["customer_id"].astype(str),
        "first_name": text(profile["first_name"]), "last_name": text(profile["last_name"]),
        "email": contacts["email"], "phone": contacts["phone"],
        "loyalty_tier": text(profile["loyalty_tier"]),
        **{column: profile[column] for column in score_columns()},
    })
    for audience in audiences.names():
        frame[f"audience_{audience}"] = profile["audiences"].map(lambda names, a=audience: a in names).map(
            {True: "true", False: "false"})
    return frame


def profile_fields(columns: list[str]) -> dict:
    fields = {}
    for column in columns:
        target, kind = PROFILE_FIELDS.get(column, (f"_profile.Attributes.{column}", "STRING"))
        if column.endswith(("_probability", "_decile")):
            kind = "NUMBER"
        fields[column] = {"Source": f"_source.{column}", "Target": target, "ContentType": kind}
    return fields


def plan_customer_profiles(day: dt.date, decision: dict, profile: pd.DataFrame, run: str) -> list[dict]:
    settings = get_config().activation.customer_profiles
    if not outbox.to_plan(PROFILES, day, "upload", decision):
        return []
    upload = profile_upload(profile)
    files = write_parts(paths.delivery(PROFILES, day, decision["attempt"], "upload"), upload, 1 << 40)
    if len(files) != 1:
        raise ActivationError(f"customer_profiles: the upload for {day} must be one file, got {len(files)}")
    domain = settings.domain_name
    job_ref = "${CreateUploadJob.JobId}"  # known once CreateUploadJob answers
    requests = [
        outbox.validate("customer-profiles", "CreateUploadJob", {
            "DomainName": domain, "DisplayName": f"crosschannel {day.isoformat()} {run_hash(run)}",
            "Fields": profile_fields(upload.columns.to_list()), "UniqueKey": "customer_id",
            "DataExpiry": settings.data_expiry_days}),
        outbox.validate("customer-profiles", "GetUploadJobPath", {"DomainName": domain, "JobId": job_ref}),
        outbox.validate("customer-profiles", "StartUploadJob", {"DomainName": domain, "JobId": job_ref}),
    ]
    defined = set(outbox.read_state(PROFILES, "segment_definitions").get("names", []))
    for audience in audiences.names():
        name = f"crosschannel_{audience}"
        if name in defined:
            continue
        requests.append(outbox.validate("customer-profiles", "CreateSegmentDefinition", {
            "DomainName": domain, "SegmentDefinitionName": name, "DisplayName": f"crosschannel {audience}",
            "Description": f"Treatment members of the crosschannel audience {audience} (include/sql/audiences/"
                           f"{audience}.sql); the control group is never uploaded as a member.",
            "SegmentGroups": {"Include": "ALL", "Groups": [{"Type": "ALL", "Dimensions": [{"ProfileAttributes": {
                "Attributes": {f"audience_{audience}": {"DimensionType": "INCLUSIVE", "Values": ["true"]}}}}]}]},
        }))
    plan = plan_request(PROFILES, day, "upload", requests, decision, files, profiles=len(upload))
    return sendable([plan], decision)
