"""Amazon Personalize: interactions, items and users, FULL on the first load and after a gap, else INCREMENTAL."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.core.partition import run_hash
from crosschannel.stages.activation import audiences, consent, outbox
from crosschannel.stages.activation.outbox import (
    PERSONALIZE,
    ActivationError,
    DestinationNotReady,
    plan_request,
    sendable,
    write_parts,
)
from crosschannel.stages.trusted.events import EVENTS_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

PERSONALIZE_DATASETS = ("interactions", "items", "users")
SCHEMA_DIR = BUNDLE_ROOT / "include" / "personalize"


def import_mode(dataset: str, day: dt.date) -> str:
    """INCREMENTAL when the dataset's last import was the day before; FULL on the first load, after a gap and
    when a past day is sent again (a forced publish after a backfill)."""
    last = outbox.read_state(PERSONALIZE, dataset).get("partition")
    return "INCREMENTAL" if last == (day - dt.timedelta(days=1)).isoformat() else "FULL"


def _all_event_days(day: dt.date) -> list:
    events = paths.trusted("events", day).parent
    return [paths.trusted("events", d) for d in paths.partition_days(events) if d <= day]


def plan_personalize(day: dt.date, force: bool) -> list[dict]:
    """The SQL jobs of the datasets to deliver (interactions since the start of the history on FULL, of the day
    on INCREMENTAL); the modes are kept beside them for the export. A dataset an earlier attempt delivered for the
    day is not rebuilt unless forced."""
    datasets = [d for d in PERSONALIZE_DATASETS if outbox.to_plan(PERSONALIZE, day, d, {"force": force})]
    modes = {dataset: import_mode(dataset, day) for dataset in datasets}
    storage.write_json(paths.activation(PERSONALIZE, day, "modes.json"), modes)
    full = modes.get("interactions") == "FULL"
    events = _all_event_days(day) if full else [paths.trusted("events", day)]
    table = {name: sqljobs.parquet([paths.trusted(name, day)])
             for name in ("customers", "orders", "order_lines", "products", "inventory")}
    sql = {
        "interactions": engines.render("activation/personalize_interactions.sql",
                                       since="1970-01-01 00:00:00" if full else engines.stamp(day),
                                       until=engines.stamp(day + dt.timedelta(days=1))),
        "items": engines.render("activation/personalize_items.sql",
                                online_stores=[int(s) for s in get_config().recommendations.online_stores]),
        "users": engines.render("activation/personalize_users.sql", models=list(get_config().models.specs)),
    }
    inputs = {
        "interactions": {"customers": table["customers"], "orders": table["orders"],
                         "order_lines": table["order_lines"],
                         "events": sqljobs.parquet([f for f in events if storage.is_committed(f)], EVENTS_SCHEMA)},
        "items": {"products": table["products"], "inventory": table["inventory"]},
        "users": {"customers": table["customers"], "scores": sqljobs.parquet(audiences.score_dirs(day))},
    }
    return [sqljobs.job(day, f"personalize_{name}.sql", sql[name], inputs[name],
                        paths.activation(PERSONALIZE, day, "tables", name)) for name in datasets]


def schema(dataset: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{dataset}.json").read_text())


def check_minimum(dataset: str, frame: pd.DataFrame, mode: str, day: dt.date) -> None:
    """Personalize's minimum data: >= min_interactions records (new ones on INCREMENTAL) and, on FULL,
    >= min_users users with >= min_user_interactions interactions each."""
    settings = get_config().activation.personalize
    if dataset != "interactions":
        return
    if len(frame) < settings.min_interactions:
        raise DestinationNotReady(
            f"personalize interactions for {day} ({mode}): {len(frame):,} interaction(s), Amazon Personalize needs "
            f">= {settings.min_interactions:,}" + (" new records" if mode == "INCREMENTAL" else ""))
    if mode == "FULL":
        per_user = frame.groupby("USER_ID").size()
        users = int((per_user >= settings.min_user_interactions).sum())
        if users < settings.min_users:
            raise DestinationNotReady(
                f"personalize interactions for {day} (FULL): {users} user(s) with >= "
                f"{settings.min_user_interactions} interactions, Amazon Personalize needs >= {settings.min_users}")


ID_FIELDS, MAX_ID = ("USER_ID", "ITEM_ID"), 256  # Personalize: ids of at most 256 characters
MAX_CATEGORICAL = 1000  # Personalize: a categorical value of at most 1,000 characters
EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01 in seconds: milliseconds fall far outside


def check_contract(dataset: str, frame: pd.DataFrame) -> None:
    """The CSV against its Avro schema as Personalize reads it: a non-nullable field has no empty value, a long or
    float is a finite number, timestamps are epoch seconds, ids fit 256 characters, a categorical value (a
    multi-value one whole, such as STOCK_LOCATIONS) 1,000. Names the column, the number of bad rows and the first
    ones."""
    import pandas as pd

    problems = []
    for field in schema(dataset)["fields"]:
        name, kinds = field["name"], field["type"] if isinstance(field["type"], list) else [field["type"]]
        values = frame[name]
        bad = values.isna() if "null" not in kinds else pd.Series(False, index=values.index)
        if {"long", "int", "float", "double"} & set(kinds):
            numbers = pd.to_numeric(values, errors="coerce")
            bad |= values.notna() & (numbers.isna() | ~numbers.abs().lt(float("inf")))
            if name.endswith("TIMESTAMP"):
                bad |= values.notna() & ~numbers.between(*EPOCH_RANGE)
        if name in ID_FIELDS:
            bad |= values.astype("string").str.len().gt(MAX_ID).fillna(False)
        if field.get("categorical"):  # Personalize's limit per categorical value (all of a multi-value field)
            bad |= values.astype("string").str.len().gt(MAX_CATEGORICAL).fillna(False)
        if bad.any():
            problems.append(f"{name} ({'/'.join(kinds)}): {int(bad.sum())} row(s), e.g. {values[bad].head(3).tolist()}")
    if problems:
        raise ActivationError(f"personalize {dataset}: the CSV does not match include/personalize/{dataset}.json "
                              f"(Personalize would refuse the import): {'; '.join(problems)}")


def _epoch_seconds(frame: pd.DataFrame, column: str) -> None:
    import pandas as pd

    values = pd.to_datetime(frame[column])
    frame[column] = (values - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)


def export_personalize(day: dt.date, decision: dict, run: str) -> list[dict]:
    """The datasets as Personalize CSVs (header = the schema's fields, epoch-second timestamps), checked, and
    one CreateDatasetImportJob per dataset."""
    settings = get_config().activation.personalize
    modes = storage.read_json(paths.activation(PERSONALIZE, day, "modes.json"))
    plans = []
    for dataset in modes:
        if not outbox.to_plan(PERSONALIZE, day, dataset, decision):  # delivered since the SQL jobs were planned
            continue
        frame = sqljobs.read_partition(paths.activation(PERSONALIZE, day, "tables", dataset)).to_pandas()
        fields = [field["name"] for field in schema(dataset)["fields"]]
        consent.refuse_contacts(PERSONALIZE, fields, f"the {dataset} dataset")
        if sorted(frame.columns) != sorted(fields):
            raise ActivationError(f"personalize {dataset}: the SQL returns {sorted(frame.columns)}, the schema "
                                  f"include/personalize/{dataset}.json declares {sorted(fields)}")
        for column in ("TIMESTAMP", "CREATION_TIMESTAMP"):
            if column in frame:
                _epoch_seconds(frame, column)
        frame = frame[fields].sort_values(fields, kind="stable")
        check_contract(dataset, frame)
        dataset_decision = decision
        try:
            check_minimum(dataset, frame, modes[dataset], day)
        except DestinationNotReady as exc:
            if decision["send"]:
                raise
            # a run that sends nothing (a backfill) still rebuilds the day; the receipt keeps the reason
            dataset_decision = {**decision, "reason": f"{decision['reason']}; {exc}"}
        folder = paths.delivery(PERSONALIZE, day, decision["attempt"], dataset)
        files = write_parts(folder, frame, 1 << 40)
        job_name = f"crosschannel-{dataset}-{day:%Y%m%d}-{modes[dataset].lower()}-{run_hash(run)}"
        request = outbox.validate("personalize", "CreateDatasetImportJob", {
            "jobName": job_name, "datasetArn": getattr(settings, f"{dataset}_dataset_arn"),
            "dataSource": {"dataLocation": files[0] if len(files) == 1 else storage.url_of(folder) + "/"},
            "roleArn": settings.role_arn, "importMode": modes[dataset]})
        plans.append(plan_request(PERSONALIZE, day, dataset, [request], dataset_decision, files,
                                  records=len(frame), mode=modes[dataset], dataset=dataset))
    return sendable(plans, decision)
