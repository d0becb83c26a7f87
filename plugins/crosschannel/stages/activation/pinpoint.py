"""Amazon Pinpoint: one import job per audience, defining (then updating) its segment.

The endpoint files are checked against Pinpoint's import contract before they are handed over
(`check_endpoint_files`): every header column is an endpoint attribute in dot notation (the installed botocore
model's EndpointBatchItem: ChannelType, Address, Id, User.UserId, User.UserAttributes.<name>, Attributes.<name>,
Metrics.<name>, Demographic.*, Location.*, OptOut, ...) with custom attribute names of at most 50 characters;
ChannelType, Address and Id are present; a record's ChannelType is EMAIL or SMS (what this bundle exports), its
Address an email address or an E.164 phone number accordingly; Id is set and unique in the import; User.UserId is
set; custom attribute values have at most 100 characters, metrics are numbers, OptOut is ALL or NONE; no value
holds a line break or tab (outbox.text); the files are UTF-8 and one import job (the folder) stays within 1 GB.
A violation raises CsvContractError naming the file, line, column and what was expected. Sources:
  https://docs.aws.amazon.com/pinpoint/latest/userguide/segments-importing.html (CSV or JSON, UTF-8, not
    compressed; new endpoints need Address and ChannelType, updates need Id; supported attributes only)
  https://docs.aws.amazon.com/pinpoint/latest/developerguide/audience-define-import.html (up to 1 GB per import
    job, two concurrent import jobs per account)
  the installed botocore model's EndpointRequest / EndpointUser docs: an attribute name up to 50 characters, a
    value up to 100; SMS addresses in E.164; OptOut ALL or NONE.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import audiences, consent, outbox, recommended
from crosschannel.stages.activation.outbox import (
    MAX_VALUE,
    PINPOINT,
    not_matching,
    not_number,
    plan_request,
    read_csv_file,
    refuse,
    score_columns,
    text,
    write_parts,
)

if TYPE_CHECKING:
    import pandas as pd

MAX_IMPORT_BYTES = 1_000_000_000  # "up to 1 GB of data" per import job
MAX_ATTRIBUTE_NAME = 50
CHANNELS = {"EMAIL": consent.EMAIL, "SMS": consent.E164}  # ChannelType: the Address it takes


def pinpoint_endpoints(audience: str, members: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """The audience's treatment members as Pinpoint endpoints: EMAIL and SMS for the contacts consent lets
    leave (crosschannel.stages.activation.consent), each with the member's recommended products; the header in
    Pinpoint's dot notation."""
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
            "User.UserId": chosen["user_id"],
            "User.UserAttributes.FirstName": text(chosen["first_name"]),
            "User.UserAttributes.LoyaltyTier": text(chosen["loyalty_tier"]),
            "Attributes.audience": audience,
            "Attributes.audience_detail": text(chosen["detail"]),
            **{f"Attributes.{column}": text(chosen[column]) for column in score_columns()},
            **{f"Attributes.{column}": text(values) for column, values in recommended.slots(chosen).items()},
            "OptOut": "NONE",
        })
        frames.append(endpoints)
    return pd.concat(frames, ignore_index=True).sort_values(["User.UserId", "ChannelType"], kind="stable")


def import_job_params(s3_url: str, audience: str, segment_id: str | None) -> dict:
    """CreateImportJob of an audience's folder: defines its segment the first day, then updates it by id."""
    settings = get_config().activation.pinpoint
    request = {"Format": "CSV", "S3Url": s3_url, "RoleArn": settings.role_arn, "DefineSegment": True,
               "RegisterEndpoints": True}
    request.update({"SegmentId": segment_id} if segment_id else {"SegmentName": f"crosschannel-{audience}"})
    return {"ApplicationId": settings.application_id, "ImportJobRequest": request}


def plan_pinpoint(day: dt.date, decision: dict, members: pd.DataFrame, profile: pd.DataFrame) -> list[dict]:
    settings = get_config().activation.pinpoint
    plans = []
    for audience in audiences.names():
        if not outbox.to_plan(PINPOINT, day, audience, decision):
            continue
        endpoints = pinpoint_endpoints(audience, members, profile)
        folder = paths.delivery(PINPOINT, day, decision["attempt"], audience)
        files = write_parts(folder, endpoints, settings.max_file_mb * 1024 * 1024)
        check_endpoint_files(files)
        segment_id = outbox.read_state(PINPOINT, audience).get("segment_id")
        requests = [outbox.validate("pinpoint", "CreateImportJob",
                                    import_job_params(storage.url_of(folder) + "/", audience, segment_id))]
        if endpoints.empty:
            decision_here = {**decision, "send": False, "reason": f"audience {audience} has no reachable "
                                                                 "treatment member today: nothing to import"}
        else:
            decision_here = decision
        plan = plan_request(PINPOINT, day, audience, requests, decision_here, files, endpoints=len(endpoints))
        if decision_here["send"]:
            plans.append(plan)
    return plans


# ---- the endpoint files' contract (this module's docstring)

@functools.cache
def endpoint_columns() -> tuple[frozenset[str], tuple[str, ...]]:
    """The CSV columns an endpoint takes, from the Pinpoint model's EndpointBatchItem: the fixed ones
    (structures flattened: User.UserId, Location.City, ...) and the prefixes of custom attributes (maps)."""
    import botocore.session

    item = botocore.session.get_session().get_service_model("pinpoint").shape_for("EndpointBatchItem")
    fixed, prefixes = set(), []
    for name, member in item.members.items():
        if member.type_name == "structure":
            for inner, shape in member.members.items():
                (prefixes.append(f"{name}.{inner}.") if shape.type_name == "map" else fixed.add(f"{name}.{inner}"))
        elif member.type_name == "map":
            prefixes.append(f"{name}.")
        else:
            fixed.add(name)
    return frozenset(fixed), tuple(prefixes)


def _header_problems(header: list[str]) -> list[str]:
    fixed, prefixes = endpoint_columns()
    problems = [f"line 1: column {c!r} is not an endpoint attribute (expected one of {sorted(fixed)} or a custom "
                f"attribute {', '.join(p + '<name>' for p in prefixes)})"
                for c in header if c not in fixed and not c.startswith(prefixes)]
    problems += [f"line 1: column {c!r}: the attribute name has {len(c) - len(p)} characters, expected at most "
                 f"{MAX_ATTRIBUTE_NAME}" for c in header for p in prefixes
                 if c.startswith(p) and len(c) - len(p) > MAX_ATTRIBUTE_NAME]
    problems += [f"line 1: no column {c!r} (new endpoints need ChannelType and Address, updates need Id)"
                 for c in ("ChannelType", "Address", "Id") if c not in header]
    problems += [f"line 1: column {c!r} appears twice" for c in sorted({c for c in header if header.count(c) > 1})]
    return problems


def _record_checks(frame: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
    channel = frame["ChannelType"]
    checks = [("ChannelType", f"one of {sorted(CHANNELS)}", ~channel.isin(list(CHANNELS)))]
    for name, pattern in CHANNELS.items():
        expected = "an email address" if name == "EMAIL" else "a phone number in E.164 (+ and up to 15 digits)"
        checks.append(("Address", f"{expected} for ChannelType {name}",
                       channel.eq(name) & (frame["Address"].eq("") | not_matching(pattern)(frame["Address"]))))
    checks.append(("Id", "an endpoint id (updates need it)", frame["Id"].eq("")))
    if "User.UserId" in frame:
        checks.append(("User.UserId", "the user id", frame["User.UserId"].eq("")))
    if "OptOut" in frame:
        checks.append(("OptOut", "ALL or NONE", ~frame["OptOut"].isin(["ALL", "NONE", ""])))
    for column in frame.columns:
        values = frame[column]
        if column.startswith(("Attributes.", "User.UserAttributes.")):
            checks.append((column, f"at most {MAX_VALUE} characters", values.str.len().gt(MAX_VALUE)))
        if column.startswith("Metrics."):
            checks.append((column, "a number", not_number(values)))
        checks.append((column, "no line break or tab in the value", values.str.contains(r"[\r\n\t]", regex=True)))
    return checks


def check_endpoint_files(files: list[str]) -> None:
    """An audience's endpoint files (one import job) against Pinpoint's contract, before they are handed over."""
    total, ids = 0, set()
    for url in files:
        frame, body = read_csv_file(url, PINPOINT)
        total += len(body.encode())
        problems = _header_problems(frame.columns.to_list())
        if total > MAX_IMPORT_BYTES:
            problems.append(f"the import's files reach {total:,} bytes: one import job takes up to 1 GB "
                            f"({MAX_IMPORT_BYTES:,} bytes)")
        refuse(PINPOINT, url, "endpoint import", problems)
        checks = _record_checks(frame)
        seen = frame["Id"].isin(ids) | (frame["Id"].ne("") & frame["Id"].duplicated(keep="first"))
        checks.append(("Id", "each endpoint id once in the import", seen))
        ids.update(frame["Id"])
        refuse(PINPOINT, url, "endpoint import", [], frame, body, checks)
