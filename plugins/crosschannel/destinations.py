"""The AWS destinations' import files and requests, the same on both targets: Amazon Pinpoint segments, Amazon
Connect Customer Profiles and Amazon Personalize datasets.

Each `plan_*` writes the day's files under <root>/activation/<destination>/dt=D/, validates the API requests
against the botocore service model and records them in the outbox; it returns the plans to send (none when the
run may not send, see `activation.decide`). Sending is `load_local` on the local target (the outbox is the
delivery: receipts say nothing was sent) and the operators of `crosschannel.aws_activation` on aws.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING

from crosschannel import activation, engines, sqljobs, storage
from crosschannel.activation import ActivationError, clean_email, clean_phone
from crosschannel.config import BUNDLE_ROOT, get_config

if TYPE_CHECKING:
    import pandas as pd

PINPOINT, PROFILES, PERSONALIZE = "pinpoint", "customer_profiles", "personalize"
PERSONALIZE_DATASETS = ("interactions", "items", "users")
SCHEMA_DIR = BUNDLE_ROOT / "include" / "personalize"
MAX_VALUE = 100  # Pinpoint: attribute values up to 100 characters


def _score_columns() -> list[str]:
    """Per model, the profile columns sent as attributes: probability, decile and the three reasons."""
    return [f"{model}_{part}" for model in get_config().models.specs
            for part in ("probability", "decile", "reason_1", "reason_2", "reason_3")]


def _text(series: pd.Series) -> pd.Series:
    """Values safe for an import CSV: no line breaks or tabs, at most MAX_VALUE characters, empty for null."""
    return (series.astype("string").fillna("").str.replace(r"[\r\n\t]+", " ", regex=True).str.slice(0, MAX_VALUE))


def _write_parts(folder, frame: pd.DataFrame, max_bytes: int) -> list[str]:
    """Write `frame` as CSV files with a header each, none above max_bytes; the folder is replaced whole."""
    header = frame.columns.to_list()
    body = frame.to_csv(index=False, header=False, lineterminator="\n").splitlines(keepends=True)
    head = (",".join(header) + "\n").encode()
    parts, current, size = [], [], len(head)
    for line in body:
        encoded = line.encode()
        if current and size + len(encoded) > max_bytes:
            parts.append(current)
            current, size = [], len(head)
        current.append(encoded)
        size += len(encoded)
    parts.append(current)
    names = []
    with storage.committing(folder, marker=False) as staging:
        for number, lines in enumerate(parts):
            name = f"part-{number:05d}.csv"
            (staging / name).write_bytes(head + b"".join(lines))
            names.append(name)
    return [storage.url_of(folder / name) for name in names]


def _plan(destination: str, day: dt.date, name: str, requests: list[dict], decision: dict,
          files: list[str], **extra) -> dict:
    status = "planned" if decision["send"] else "not sent"
    outbox = activation.write_outbox(destination, day, name, requests,
                                     {"status": status, "sent": False, "reason": decision["reason"]})
    return {"destination": destination, "partition": day.isoformat(), "name": name, "requests": requests,
            "files": files, "outbox": outbox, **extra}


def _sendable(plans: list[dict], decision: dict) -> list[dict]:
    return plans if decision["send"] else []


# ---- Amazon Pinpoint: one import job per audience, defining (then updating) its segment -----------------------

def pinpoint_endpoints(audience: str, members: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """The audience's treatment members as Pinpoint endpoints: EMAIL for opted-in valid addresses, SMS for
    opted-in phones in E.164; the header in Pinpoint's dot notation."""
    import pandas as pd

    treated = members[(members["audience"] == audience) & (members["assignment"] == "treatment")]
    frame = treated[["customer_id", "detail"]].merge(profile, on="customer_id", how="inner")
    frames = []
    for channel, column, opt_in, clean in (("EMAIL", "email", "email_opt_in", clean_email),
                                           ("SMS", "phone", "sms_opt_in", clean_phone)):
        address = frame[column].map(clean)
        chosen = frame[frame[opt_in].fillna(False).astype(bool) & address.notna()]
        endpoints = pd.DataFrame({
            "ChannelType": channel,
            "Address": address[chosen.index],
            "Id": channel.lower() + "-" + chosen["customer_id"].astype(str),
            "User.UserId": chosen["customer_id"].astype(str),
            "User.UserAttributes.FirstName": _text(chosen["first_name"]),
            "User.UserAttributes.LoyaltyTier": _text(chosen["loyalty_tier"]),
            "Attributes.audience": audience,
            "Attributes.audience_detail": _text(chosen["detail"]),
            **{f"Attributes.{column}": _text(chosen[column]) for column in _score_columns()},
            "OptOut": "NONE",
        })
        frames.append(endpoints)
    return pd.concat(frames, ignore_index=True).sort_values(["User.UserId", "ChannelType"], kind="stable")


def plan_pinpoint(day: dt.date, decision: dict, members: pd.DataFrame, profile: pd.DataFrame) -> list[dict]:
    from crosschannel import audiences

    settings = get_config().activation.pinpoint
    plans = []
    for audience in audiences.names():
        endpoints = pinpoint_endpoints(audience, members, profile)
        folder = activation.zone(PINPOINT, day, audience)
        files = _write_parts(folder, endpoints, settings.max_file_mb * 1024 * 1024)
        segment_id = activation.read_state(PINPOINT, audience).get("segment_id")
        request = {"Format": "CSV", "S3Url": storage.url_of(folder) + "/", "RoleArn": settings.role_arn,
                   "DefineSegment": True, "RegisterEndpoints": True}
        request.update({"SegmentId": segment_id} if segment_id else {"SegmentName": f"crosschannel-{audience}"})
        requests = [activation.validate("pinpoint", "CreateImportJob",
                                        {"ApplicationId": settings.application_id, "ImportJobRequest": request})]
        if endpoints.empty:
            decision_here = {**decision, "send": False, "reason": f"audience {audience} has no reachable "
                                                                 "treatment member today: nothing to import"}
        else:
            decision_here = decision
        plan = _plan(PINPOINT, day, audience, requests, decision_here, files, endpoints=len(endpoints))
        if decision_here["send"]:
            plans.append(plan)
    return plans


# ---- Amazon Connect Customer Profiles: one bulk upload job, and a segment definition per audience ------------

PROFILE_FIELDS = {  # column: (profile target, content type)
    "customer_id": ("_profile.AccountNumber", "STRING"),
    "first_name": ("_profile.FirstName", "NAME"),
    "last_name": ("_profile.LastName", "NAME"),
    "email": ("_profile.EmailAddress", "EMAIL_ADDRESS"),
    "phone": ("_profile.PhoneNumber", "PHONE_NUMBER"),
    "loyalty_tier": ("_profile.Attributes.loyalty_tier", "STRING"),
}


def profile_upload(profile: pd.DataFrame) -> pd.DataFrame:
    """Every scored customer: identity, scores, and per audience `audience_<name>` true only for a treatment
    member (control members and non-members read false, so yesterday's membership does not linger)."""
    import pandas as pd

    from crosschannel import audiences

    frame = pd.DataFrame({
        "customer_id": profile["customer_id"].astype(str),
        "first_name": _text(profile["first_name"]), "last_name": _text(profile["last_name"]),
        "email": profile["email"].map(clean_email), "phone": profile["phone"].map(clean_phone),
        "loyalty_tier": _text(profile["loyalty_tier"]),
        **{column: profile[column] for column in _score_columns()},
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
    from crosschannel import audiences

    settings = get_config().activation.customer_profiles
    upload = profile_upload(profile)
    files = _write_parts(activation.zone(PROFILES, day, "upload"), upload, 1 << 40)
    if len(files) != 1:
        raise ActivationError(f"customer_profiles: the upload for {day} must be one file, got {len(files)}")
    domain = settings.domain_name
    job_ref = "${CreateUploadJob.JobId}"  # known once CreateUploadJob answers
    requests = [
        activation.validate("customer-profiles", "CreateUploadJob", {
            "DomainName": domain, "DisplayName": f"crosschannel {day.isoformat()} {_run_hash(run)}",
            "Fields": profile_fields(upload.columns.to_list()), "UniqueKey": "customer_id",
            "DataExpiry": settings.data_expiry_days}),
        activation.validate("customer-profiles", "GetUploadJobPath", {"DomainName": domain, "JobId": job_ref}),
        activation.validate("customer-profiles", "StartUploadJob", {"DomainName": domain, "JobId": job_ref}),
    ]
    defined = set(activation.read_state(PROFILES, "segment_definitions").get("names", []))
    for audience in audiences.names():
        name = f"crosschannel_{audience}"
        if name in defined:
            continue
        requests.append(activation.validate("customer-profiles", "CreateSegmentDefinition", {
            "DomainName": domain, "SegmentDefinitionName": name, "DisplayName": f"crosschannel {audience}",
            "Description": f"Treatment members of the crosschannel audience {audience} (include/sql/audiences/"
                           f"{audience}.sql); the control group is never uploaded as a member.",
            "SegmentGroups": {"Include": "ALL", "Groups": [{"Type": "ALL", "Dimensions": [{"ProfileAttributes": {
                "Attributes": {f"audience_{audience}": {"DimensionType": "INCLUSIVE", "Values": ["true"]}}}}]}]},
        }))
    plan = _plan(PROFILES, day, "upload", requests, decision, files, profiles=len(upload))
    return _sendable([plan], decision)


# ---- Amazon Personalize: interactions, items and users, FULL on the first load and after a gap, else INCREMENTAL

def import_mode(dataset: str, day: dt.date) -> str:
    """INCREMENTAL when the dataset's last import was the day before; FULL on the first load, after a gap and
    when a past day is sent again (a forced publish after a backfill)."""
    last = activation.read_state(PERSONALIZE, dataset).get("partition")
    return "INCREMENTAL" if last == (day - dt.timedelta(days=1)).isoformat() else "FULL"



def _all_event_days(day: dt.date) -> list:
    from crosschannel import trusted

    base = storage.zone("trusted", "events")
    days = sorted(p.name.removeprefix("dt=") for p in base.glob("dt=*")) if base.exists() else []
    return [trusted.final_dir("events", dt.date.fromisoformat(d)) for d in days if d <= day.isoformat()]


def plan_personalize(day: dt.date) -> list[dict]:
    """The SQL jobs of the three datasets (interactions since the start of the history on FULL, of the day on
    INCREMENTAL); the modes are kept beside them for the export."""
    from crosschannel import audiences, trusted
    from crosschannel.trusted_events import EVENTS_SCHEMA

    modes = {dataset: import_mode(dataset, day) for dataset in PERSONALIZE_DATASETS}
    storage.write_json(activation.zone(PERSONALIZE, day, "modes.json"), modes)
    full = modes["interactions"] == "FULL"
    events = _all_event_days(day) if full else [trusted.final_dir("events", day)]
    table = {name: sqljobs.parquet([trusted.final_dir(name, day)])
             for name in ("customers", "orders", "order_lines", "products")}
    sql = {
        "interactions": engines.render("activation/personalize_interactions.sql",
                                       since="1970-01-01 00:00:00" if full else engines.stamp(day),
                                       until=engines.stamp(day + dt.timedelta(days=1))),
        "items": engines.render("activation/personalize_items.sql"),
        "users": engines.render("activation/personalize_users.sql", models=list(get_config().models.specs)),
    }
    inputs = {
        "interactions": {"orders": table["orders"], "order_lines": table["order_lines"],
                         "events": sqljobs.parquet([f for f in events if storage.is_committed(f)], EVENTS_SCHEMA)},
        "items": {"products": table["products"]},
        "users": {"customers": table["customers"], "scores": sqljobs.parquet(audiences.score_dirs(day))},
    }
    return [sqljobs.job(day, f"personalize_{name}.sql", sql[name], inputs[name],
                        activation.zone(PERSONALIZE, day, "tables", name)) for name in PERSONALIZE_DATASETS]


def schema(dataset: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{dataset}.json").read_text())


def check_minimum(dataset: str, frame: pd.DataFrame, mode: str, day: dt.date) -> None:
    """Personalize's minimum data: >= min_interactions records (new ones on INCREMENTAL) and, on FULL,
    >= min_users users with >= min_user_interactions interactions each."""
    settings = get_config().activation.personalize
    if dataset != "interactions":
        return
    if len(frame) < settings.min_interactions:
        raise ActivationError(
            f"personalize interactions for {day} ({mode}): {len(frame):,} interaction(s), Amazon Personalize needs "
            f">= {settings.min_interactions:,}" + (" new records" if mode == "INCREMENTAL" else ""))
    if mode == "FULL":
        per_user = frame.groupby("USER_ID").size()
        users = int((per_user >= settings.min_user_interactions).sum())
        if users < settings.min_users:
            raise ActivationError(
                f"personalize interactions for {day} (FULL): {users} user(s) with >= "
                f"{settings.min_user_interactions} interactions, Amazon Personalize needs >= {settings.min_users}")


def _epoch_seconds(frame: pd.DataFrame, column: str) -> None:
    import pandas as pd

    values = pd.to_datetime(frame[column])
    frame[column] = (values - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)


def export_personalize(day: dt.date, decision: dict, run: str) -> list[dict]:
    """The datasets as Personalize CSVs (header = the schema's fields, epoch-second timestamps), checked, and
    one CreateDatasetImportJob per dataset."""
    settings = get_config().activation.personalize
    modes = storage.read_json(activation.zone(PERSONALIZE, day, "modes.json"))
    plans = []
    for dataset in PERSONALIZE_DATASETS:
        frame = sqljobs.read_partition(activation.zone(PERSONALIZE, day, "tables", dataset)).to_pandas()
        fields = [field["name"] for field in schema(dataset)["fields"]]
        if sorted(frame.columns) != sorted(fields):
            raise ActivationError(f"personalize {dataset}: the SQL returns {sorted(frame.columns)}, the schema "
                                  f"include/personalize/{dataset}.json declares {sorted(fields)}")
        for column in ("TIMESTAMP", "CREATION_TIMESTAMP"):
            if column in frame:
                _epoch_seconds(frame, column)
        frame = frame[fields].sort_values(fields, kind="stable")
        dataset_decision = decision
        try:
            check_minimum(dataset, frame, modes[dataset], day)
        except ActivationError as exc:
            if decision["send"]:
                raise
            # a run that sends nothing (a backfill) still rebuilds the day; the receipt keeps the reason
            dataset_decision = {**decision, "reason": f"{decision['reason']}; {exc}"}
        files = _write_parts(activation.zone(PERSONALIZE, day, dataset), frame, 1 << 40)
        job_name = f"crosschannel-{dataset}-{day:%Y%m%d}-{modes[dataset].lower()}-{_run_hash(run)}"
        request = activation.validate("personalize", "CreateDatasetImportJob", {
            "jobName": job_name, "datasetArn": getattr(settings, f"{dataset}_dataset_arn"),
            "dataSource": {"dataLocation": files[0] if len(files) == 1 else storage.url_of(
                activation.zone(PERSONALIZE, day, dataset)) + "/"},
            "roleArn": settings.role_arn, "importMode": modes[dataset]})
        plans.append(_plan(PERSONALIZE, day, dataset, [request], dataset_decision, files, records=len(frame),
                           mode=modes[dataset], dataset=dataset))
    return _sendable(plans, decision)


def _run_hash(run: str) -> str:
    return hashlib.sha1(run.encode()).hexdigest()[:6]


# ---- the local target's delivery ------------------------------------------------------------------------------

def load_local(plan: dict) -> str:
    """The local target sends nothing: the receipt says so, and the destination's state moves on as it would
    after a successful import (so the next day's Personalize load is INCREMENTAL, as on aws)."""
    record_delivery(plan, {"status": "outbox", "sent": False,
                           "reason": "local target: the validated requests and files are the delivery"})
    return plan["outbox"]


def record_delivery(plan: dict, receipt: dict, **state) -> None:
    """After a delivery: its receipt, then what the next run needs to know (segment id, last import)."""
    activation.receipt(plan, **receipt)
    destination, name = plan["destination"], plan["name"]
    if destination == PERSONALIZE:
        activation.write_state(PERSONALIZE, name, {"partition": plan["partition"], "mode": plan["mode"], **state})
    elif destination == PINPOINT and state.get("segment_id"):
        activation.write_state(PINPOINT, name, {"partition": plan["partition"], **state})
    elif destination == PROFILES:
        defined = {r["params"]["SegmentDefinitionName"] for r in plan["requests"]
                   if r["operation"] == "CreateSegmentDefinition"}
        known = set(activation.read_state(PROFILES, "segment_definitions").get("names", []))
        activation.write_state(PROFILES, "segment_definitions", {"names": sorted(known | defined)})
