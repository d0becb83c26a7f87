"""Amazon Personalize: interactions, items and users, FULL on the first load and after a gap, else INCREMENTAL."""

from __future__ import annotations

import datetime as dt
import json

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.core.errors import MissingPartition
from crosschannel.core.partition import run_hash
from crosschannel.stages.activation import audiences, consent, outbox
from crosschannel.stages.activation.outbox import (
    PERSONALIZE,
    ActivationError,
    DestinationNotReady,
    plan_request,
    sendable,
)
from crosschannel.stages.trusted.events import EVENTS_SCHEMA

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


def run_folder(day: dt.date, run: str):
    """The run's working files of the day (modes.json, each dataset's file and checks): two runs of a day, such as a
    backfill beside a scheduled run, never export each other's file, checks or modes."""
    return paths.activation(PERSONALIZE, day, f"run={run_hash(run)}")


def plan_personalize(day: dt.date, force: bool, run: str) -> list[dict]:
    """Two SQL jobs per dataset to deliver (interactions since the start of the history on FULL, of the day on
    INCREMENTAL): its import file (personalize_csv.sql) and what Personalize would refuse in it with the counts of
    its minimum-data rule (personalize_checks.sql); the modes are kept beside them for the export. A dataset an
    earlier attempt delivered for the day is not rebuilt unless forced."""
    _check_user_deciles()
    datasets = [d for d in PERSONALIZE_DATASETS if outbox.to_plan(PERSONALIZE, day, d, {"force": force})]
    modes = {dataset: import_mode(dataset, day) for dataset in datasets}
    storage.write_json(run_folder(day, run) / "modes.json", modes)
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
    return [job for name in datasets for job in file_jobs(day, run, name, sql[name], inputs[name])]


def _check_user_deciles() -> None:
    """personalize_users.sql gives one <MODEL>_DECILE per configured model: the users schema must declare the same."""
    declared = sorted(f["name"] for f in fields_of("users") if f["name"].endswith("_DECILE"))
    given = sorted(f"{model.upper()}_DECILE" for model in get_config().models.specs)
    if declared != given:
        raise ActivationError(f"personalize users: models.specs gives the deciles {given}, "
                              f"include/personalize/users.json declares {declared}: make the schema (and the users "
                              "dataset's schema in Personalize) match the models")


def file_jobs(day: dt.date, run: str, dataset: str, body: str, inputs: dict[str, dict]) -> list[dict]:
    """The import file and the checks of a dataset whose rows `body` (SQL over `inputs`) returns."""
    fields = fields_of(dataset)
    consent.refuse_contacts(PERSONALIZE, [f["name"] for f in fields], f"the {dataset} dataset")
    users = get_config().activation.personalize.min_user_interactions if dataset == "interactions" else None
    return [
        sqljobs.job(day, f"personalize_{dataset}.csv.sql",
                    engines.render("activation/personalize_csv.sql", body=body, fields=fields), inputs,
                    run_folder(day, run) / "files" / dataset, output_format="text"),
        sqljobs.job(day, f"personalize_{dataset}.checks.sql",
                    engines.render("activation/personalize_checks.sql", body=body, fields=fields,
                                   epoch_range=EPOCH_RANGE, min_user_interactions=users), inputs,
                    run_folder(day, run) / "checks" / dataset),
    ]


def schema(dataset: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{dataset}.json").read_text())


ID_FIELDS, MAX_ID = ("USER_ID", "ITEM_ID"), 256  # Personalize: ids of at most 256 characters
MAX_CATEGORICAL = 1000  # Personalize: a categorical value of at most 1,000 characters
EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01 in seconds: milliseconds fall far outside


def fields_of(dataset: str) -> list[dict]:
    """The schema's fields as the SQL jobs check and write them: kind (timestamp: a long named *TIMESTAMP, long,
    float, or string for anything else), nullable, and the length limit of an id or a categorical value."""
    fields = []
    for field in schema(dataset)["fields"]:
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        kind = ("float" if {"float", "double"} & set(kinds) else
                ("timestamp" if field["name"].endswith("TIMESTAMP") else "long") if {"long", "int"} & set(kinds)
                else "string")
        limit = MAX_ID if field["name"] in ID_FIELDS else MAX_CATEGORICAL if field.get("categorical") else None
        fields.append({"name": field["name"], "kind": kind, "avro": "/".join(kinds), "nullable": "null" in kinds,
                       "limit": limit})
    return fields


def read_checks(day: dt.date, run: str, dataset: str) -> dict:
    """personalize_checks.sql's findings: {"rows": n, "users": n or None, "bad": {field: (n, [examples])},
    "type": {float field: the type the SQL gives, when not a DECIMAL}}."""
    found = {"rows": 0, "users": None, "bad": {}, "type": {}}
    checks = sqljobs.read_partition(run_folder(day, run) / "checks" / dataset).to_pylist()
    for row in sorted(checks, key=lambda r: (r["field"] or "", r["example"] or "")):
        if row["kind"] == "bad":
            found["bad"].setdefault(row["field"], (row["n"], []))[1].append(row["example"])
        elif row["kind"] == "type":
            found["type"][row["field"]] = row["example"]
        else:
            found[row["kind"]] = row["n"]
    return found


def check_contract(dataset: str, checks: dict) -> None:
    """The file against its Avro schema as Personalize reads it (personalize_checks.sql): a non-nullable field has
    no empty value, a float is a finite DECIMAL, timestamps are epoch seconds, ids fit 256 characters, a categorical
    value (a multi-value one whole, such as STOCK_LOCATIONS) 1,000. Names the column, the number of bad rows and
    the first ones."""
    avro = {f["name"]: f["avro"] for f in fields_of(dataset)}
    problems = [f"{name} ({avro[name]}): the SQL gives {kind}, expected a DECIMAL (a DOUBLE is not written to the "
                "cent alike on DuckDB and Spark)" for name, kind in sorted(checks["type"].items())]
    problems += [f"{name} ({avro[name]}): {n} row(s), "
                f"e.g. {[value if value is None or len(value) <= 60 else value[:60] + '...' for value in examples]}"
                for name, (n, examples) in sorted(checks["bad"].items())]
    if problems:
        raise ActivationError(f"personalize {dataset}: the CSV does not match include/personalize/{dataset}.json "
                              f"(Personalize would refuse the import): {'; '.join(problems)}")


def check_minimum(dataset: str, checks: dict, mode: str, day: dt.date) -> None:
    """Personalize's minimum data: >= min_interactions records (new ones on INCREMENTAL) and, on FULL,
    >= min_users users with >= min_user_interactions interactions each."""
    settings = get_config().activation.personalize
    if dataset != "interactions":
        return
    if checks["rows"] < settings.min_interactions:
        raise DestinationNotReady(
            f"personalize interactions for {day} ({mode}): {checks['rows']:,} interaction(s), Amazon Personalize "
            f"needs >= {settings.min_interactions:,}" + (" new records" if mode == "INCREMENTAL" else ""))
    if mode == "FULL" and checks["users"] < settings.min_users:
        raise DestinationNotReady(
            f"personalize interactions for {day} (FULL): {checks['users']} user(s) with >= "
            f"{settings.min_user_interactions} interactions, Amazon Personalize needs >= {settings.min_users}")


def deliver_file(day: dt.date, run: str, dataset: str, folder) -> str:
    """Copy the committed import file into the attempt's folder (on S3 a CopyObject: no byte passes the worker)."""
    source = storage.resolve(run_folder(day, run) / "files" / dataset)
    files = sorted(source.glob("part-*"))
    if len(files) != 1:
        raise ActivationError(f"personalize {dataset}: {storage.url_of(source)} holds {len(files)} data files, the "
                              "SQL job writes one")
    with storage.committing(folder, marker=False) as staging:
        files[0].fs.copy(files[0].path, (staging / "part-00000.csv").path)
    return storage.url_of(folder / "part-00000.csv")


def export_personalize(day: dt.date, decision: dict, run: str) -> list[dict]:
    """The datasets' import files (header = the schema's fields, epoch-second timestamps), checked from their
    checks, copied into the attempt's folder, and one CreateDatasetImportJob per dataset. The run's working files
    are removed once every plan is written (the attempt's folder holds what is sent)."""
    settings = get_config().activation.personalize
    working = run_folder(day, run)
    if not (working / "modes.json").exists():
        raise MissingPartition(f"{storage.url_of(working)}: this run's Personalize files are not there (an earlier try "
                               "of export_personalize planned the imports and removed them): clear plan_personalize "
                               "to build them again")
    modes = storage.read_json(working / "modes.json")
    plans = []
    for dataset in modes:
        if not outbox.to_plan(PERSONALIZE, day, dataset, decision):  # delivered since the SQL jobs were planned
            continue
        checks = read_checks(day, run, dataset)
        check_contract(dataset, checks)
        dataset_decision = decision
        try:
            check_minimum(dataset, checks, modes[dataset], day)
        except DestinationNotReady as exc:
            if decision["send"]:
                raise
            # a run that sends nothing (a backfill) still rebuilds the day; the receipt keeps the reason
            dataset_decision = {**decision, "reason": f"{decision['reason']}; {exc}"}
        file = deliver_file(day, run, dataset, paths.delivery(PERSONALIZE, day, decision["attempt"], dataset))
        job_name = f"crosschannel-{dataset}-{day:%Y%m%d}-{modes[dataset].lower()}-{run_hash(run)}"
        request = outbox.validate("personalize", "CreateDatasetImportJob", {
            "jobName": job_name, "datasetArn": getattr(settings, f"{dataset}_dataset_arn"),
            "dataSource": {"dataLocation": file}, "roleArn": settings.role_arn, "importMode": modes[dataset]})
        plans.append(plan_request(PERSONALIZE, day, dataset, [request], dataset_decision, [file],
                                  records=checks["rows"], mode=modes[dataset], dataset=dataset))
    storage.remove(working)
    return sendable(plans, decision)
