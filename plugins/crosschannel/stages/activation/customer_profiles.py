"""Amazon Connect Customer Profiles (Pinpoint's successor): one bulk upload job of every scored profile, and a
segment definition per audience.

The upload CSV is checked against its contract before it is handed over (`check_upload_file`), as Personalize's
files are against their schemas: the columns are exactly the upload job's field mapping (`profile_fields`) with
the unique key among them; the key is present and unique; an EMAIL_ADDRESS value is an address, a PHONE_NUMBER an
E.164 number (consent's rules), a NUMBER a finite number, each possibly empty; every value fits the standard
profile's 255 characters; the file is UTF-8 with a header and under 1 GB. A violation raises CsvContractError
naming the file, line, column and what was expected. Sources:
  https://docs.aws.amazon.com/connect/latest/adminguide/customer-segments-imported-files.html (CSV, under 1 GB,
    headers, UTF-8; the mapping to standard profile attributes)
  https://docs.aws.amazon.com/customerprofiles/latest/APIReference/API_CreateUploadJob.html (Fields, UniqueKey,
    DataExpiry 1-1098 days, DisplayName 1-255: the request itself goes through awsapi.check)
  https://docs.aws.amazon.com/connect/latest/adminguide/mapping-field-definitions.html (Source `_source.<column>`,
    Target `_profile.<field>`, ContentType STRING | NUMBER | PHONE_NUMBER | EMAIL_ADDRESS | NAME)
  the installed botocore model of CreateProfile: AccountNumber, FirstName, LastName, EmailAddress, PhoneNumber and
    Attributes keys and values are 1-255 characters.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import paths
from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.stages.activation import audiences, consent, outbox, recommended
from crosschannel.stages.activation.outbox import (
    PROFILES,
    not_matching,
    not_number,
    plan_request,
    read_csv_file,
    refuse,
    score_columns,
    sendable,
    text,
    write_parts,
)

if TYPE_CHECKING:
    import pandas as pd

UNIQUE_KEY = "customer_id"
MAX_UPLOAD_BYTES = 1_000_000_000  # "under 1GB"
MAX_PROFILE_VALUE = 255  # the standard profile's fields and attribute values
PROFILE_FIELDS = {  # column: (profile target, content type)
    "customer_id": ("_profile.AccountNumber", "STRING"),
    "first_name": ("_profile.FirstName", "NAME"),
    "last_name": ("_profile.LastName", "NAME"),
    "email": ("_profile.EmailAddress", "EMAIL_ADDRESS"),
    "phone": ("_profile.PhoneNumber", "PHONE_NUMBER"),
    "loyalty_tier": ("_profile.Attributes.loyalty_tier", "STRING"),
}


def profile_upload(profile: pd.DataFrame) -> pd.DataFrame:
    """Every scored customer: identity, the contacts consent lets leave, scores, the recommended products consent
    lets leave (recommended_<n>_<field>, empty otherwise), and per audience
    `audience_<name>` true only for a treatment member (control members and non-members read false, so
    yesterday's membership does not linger)."""
    import pandas as pd

    contacts = consent.contacts(profile[["email", "phone", "email_opt_in", "sms_opt_in"]], PROFILES)
    frame = pd.DataFrame({
        UNIQUE_KEY: profile["user_id"],
        "first_name": text(profile["first_name"]), "last_name": text(profile["last_name"]),
        "email": contacts["email"], "phone": contacts["phone"],
        "loyalty_tier": text(profile["loyalty_tier"]),
        **{column: profile[column] for column in score_columns()},
        **{column: text(values) for column, values in recommended.slots(profile).items()},
    })
    for audience in audiences.names(every=True):  # the same columns whatever the sources: not built is not a member
        frame[f"audience_{audience}"] = profile["audiences"].map(lambda names, a=audience: a in names).map(
            {True: "true", False: "false"})
    return frame[upload_columns()]


def upload_columns() -> list[str]:
    """The upload CSV's header: identity, contacts, tier, scores, one `audience_<name>` per audience (built or not,
    so the profile fields stay the same when a source is declared)."""
    return [UNIQUE_KEY, "first_name", "last_name", "email", "phone", "loyalty_tier", *score_columns(),
            *recommended.slot_columns(), *(f"audience_{audience}" for audience in audiences.names(every=True))]


def profile_fields(columns: list[str]) -> dict:
    fields = {}
    for column in columns:
        target, kind = PROFILE_FIELDS.get(column, (f"_profile.Attributes.{column}", "STRING"))
        if column.endswith(("_probability", "_decile", "_price")):
            kind = "NUMBER"
        fields[column] = {"Source": f"_source.{column}", "Target": target, "ContentType": kind}
    return fields


JOB_REF = "${CreateUploadJob.JobId}"  # known once CreateUploadJob answers


def upload_job_params(day: dt.date, run: str, columns: list[str]) -> list[tuple[str, dict]]:
    """CreateUploadJob, GetUploadJobPath and StartUploadJob as (operation, params), the job id a placeholder."""
    settings = get_config().activation.customer_profiles
    domain = settings.domain_name
    return [("CreateUploadJob", {"DomainName": domain, "DisplayName": f"crosschannel {day.isoformat()} {run_hash(run)}",
                                 "Fields": profile_fields(columns), "UniqueKey": UNIQUE_KEY,
                                 "DataExpiry": settings.data_expiry_days}),
            ("GetUploadJobPath", {"DomainName": domain, "JobId": JOB_REF}),
            ("StartUploadJob", {"DomainName": domain, "JobId": JOB_REF})]


def segment_definition_params(audience: str) -> dict:
    """CreateSegmentDefinition of an audience: the profiles whose `audience_<name>` is true."""
    return {
        "DomainName": get_config().activation.customer_profiles.domain_name,
        "SegmentDefinitionName": f"crosschannel_{audience}", "DisplayName": f"crosschannel {audience}",
        "Description": f"Treatment members of the crosschannel audience {audience} (include/sql/audiences/"
                       f"{audience}.sql); the control group is never uploaded as a member.",
        "SegmentGroups": {"Include": "ALL", "Groups": [{"Type": "ALL", "Dimensions": [{"ProfileAttributes": {
            "Attributes": {f"audience_{audience}": {"DimensionType": "INCLUSIVE", "Values": ["true"]}}}}]}]},
    }


def plan_customer_profiles(day: dt.date, decision: dict, profile: pd.DataFrame, run: str) -> list[dict]:
    if not outbox.to_plan(PROFILES, day, "upload", decision):
        return []
    upload = profile_upload(profile)
    files = write_parts(paths.delivery(PROFILES, day, decision["attempt"], "upload"), upload, 1 << 40)
    if len(files) != 1:
        raise outbox.ActivationError(f"customer_profiles: the upload for {day} must be one file, got {len(files)}")
    check_upload_file(files[0], profile_fields(upload.columns.to_list()))
    requests = [outbox.validate("customer-profiles", operation, params)
                for operation, params in upload_job_params(day, run, upload.columns.to_list())]
    defined = set(outbox.read_state(PROFILES, "segment_definitions").get("names", []))
    requests += [outbox.validate("customer-profiles", "CreateSegmentDefinition", segment_definition_params(audience))
                 for audience in audiences.names() if f"crosschannel_{audience}" not in defined]
    plan = plan_request(PROFILES, day, "upload", requests, decision, files, profiles=len(upload))
    return sendable([plan], decision)


CONTENT_RULES = {  # ContentType: (what is expected, where a value breaks it)
    "EMAIL_ADDRESS": ("an email address or empty", not_matching(consent.EMAIL)),
    "PHONE_NUMBER": ("an E.164 phone number or empty", not_matching(consent.E164)),
    "NUMBER": ("a finite number or empty", not_number),
}


def check_upload_file(url: str, fields: dict, unique_key: str = UNIQUE_KEY) -> None:
    """The upload CSV against its contract (this module's docstring), before it is handed over."""
    frame, text = read_csv_file(url, PROFILES)
    header, problems = frame.columns.to_list(), []
    size = len(text.encode())
    if size >= MAX_UPLOAD_BYTES:
        problems.append(f"{size:,} bytes: expected under 1 GB ({MAX_UPLOAD_BYTES:,} bytes)")
    if header != list(fields):
        problems.append(f"line 1: header {header} does not match the upload job's field mapping {list(fields)}")
    if unique_key not in header:
        problems.append(f"line 1: no column {unique_key!r}, the upload job's UniqueKey")
    refuse(PROFILES, url, "upload", problems)
    key = frame[unique_key]
    checks = [(unique_key, "a value (the UniqueKey)", key.eq("")),
              (unique_key, "each key once (the UniqueKey)", key.ne("") & key.duplicated(keep="first"))]
    for column, field in fields.items():
        if field["ContentType"] in CONTENT_RULES:
            expected, rule = CONTENT_RULES[field["ContentType"]]
            checks.append((column, expected, rule(frame[column])))
        checks.append((column, f"at most {MAX_PROFILE_VALUE} characters",
                       frame[column].str.len().gt(MAX_PROFILE_VALUE)))
    refuse(PROFILES, url, "upload", [], frame, text, checks)
