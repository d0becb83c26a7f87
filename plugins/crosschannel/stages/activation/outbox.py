"""What every activation destination shares: the requests validated against the botocore service models, the
outbox they are recorded in with their receipts, the import files, and what each destination last received.

    <root>/activation/<destination>/dt=D/attempt=A/...            the attempt's import files
    <root>/activation/<destination>/dt=D/attempt=A/outbox/*.json  the exact API requests, validated, with their receipt
    <root>/activation/<destination>/state/...                     what was last sent (segment ids, last import, traits)

Every run of a day is an attempt with its own folder (`attempt` below): what an earlier attempt wrote, sent and
recorded is never overwritten. A request document (one `name` of a destination: an audience, a dataset, the
upload) that an earlier attempt delivered is not planned again unless the run forces it (`force_publish`): a
re-run of a delivered day sends nothing new, and its summary names the attempt that delivered.

Sending a plan is the AWS operators' (crosschannel.wiring.aws) or the local outbox's (crosschannel.local.outbox);
both end with `record_delivery`, which marks the document delivered.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

from crosschannel.core import awsapi, paths, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError
from crosschannel.core.partition import run_hash

if TYPE_CHECKING:
    import pandas as pd

PINPOINT, PROFILES, PERSONALIZE, SEGMENT = "pinpoint", "customer_profiles", "personalize", "segment"
DESTINATIONS = (PINPOINT, PROFILES, PERSONALIZE, SEGMENT)
MAX_VALUE = 100  # Pinpoint: attribute values up to 100 characters


class ActivationError(DataError, RuntimeError):
    """An activation step failed; the message names the destination, partition and what went wrong."""


def read_state(destination: str, name: str) -> dict:
    path = paths.activation_state(destination, f"{name}.json")
    return storage.read_json(path) if path.exists() else {}


def write_state(destination: str, name: str, state: dict) -> None:
    storage.write_json(paths.activation_state(destination, f"{name}.json"), state)


def validate(service: str, operation: str, params: dict) -> dict:
    """The request, checked against the installed botocore service model (crosschannel.core.awsapi): types and
    required members as boto3 checks them, and on the aws target enums, patterns, length and range limits as AWS
    does; an invalid one raises naming the service, operation and every problem. On the local target what AWS would
    refuse (empty ARNs, file:// locations) is kept with the request as `aws_would_refuse`."""
    try:
        return awsapi.request(service, operation, params)
    except awsapi.AwsRequestError as exc:
        raise ActivationError(str(exc)) from None


class DestinationNotReady(ActivationError):
    """A destination's precondition fails before anything is sent (Personalize's minimum data, Segment's
    connection): the run fails before any send, or, with `activation.skip_unready_destinations`, the destination
    is reported as skipped and the others send."""


def new_attempt(run: str) -> str:
    """A delivery attempt's id: its UTC start time (so attempts sort in order) and the Airflow run's hash."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{run_hash(run)}"


def write_outbox(destination: str, day: dt.date, attempt: str, name: str, requests: list[dict],
                 receipt: dict) -> str:
    """Record a destination's requests for the day's attempt with their receipt; returns the document's URL."""
    path = paths.delivery(destination, day, attempt, "outbox", f"{name}.json")
    storage.write_json(path, {"destination": destination, "partition": day.isoformat(), "attempt": attempt,
                              "name": name, "requests": requests, "receipt": receipt})
    return storage.url_of(path)


def documents(destination: str, day: dt.date, attempt: str) -> list[dict]:
    """The outbox documents of one attempt."""
    folder = paths.delivery(destination, day, attempt, "outbox")
    return [storage.read_json(p) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def delivered_documents(destination: str, day: dt.date) -> dict[str, dict]:
    """Per request document name, the document of the first attempt that delivered it for the day."""
    found: dict[str, dict] = {}
    for folder in paths.deliveries(destination, day):
        for document in documents(destination, day, folder.name.removeprefix(paths.ATTEMPT_PREFIX)):
            if document["receipt"].get("delivered"):
                found.setdefault(document["name"], document)
    return found


def to_plan(destination: str, day: dt.date, name: str, decision: dict) -> bool:
    """Whether this attempt plans `name`: not when an earlier attempt delivered it, unless forced."""
    return decision.get("force", False) or name not in delivered_documents(destination, day)


def receipt(plan: dict, **fields) -> str:
    """Update the receipt of a planned request document (when it was sent, or why not)."""
    path = storage.location(plan["outbox"])
    document = storage.read_json(path)
    document["receipt"] = {**document["receipt"], **fields}
    storage.write_json(path, document)
    return plan["outbox"]


def record_delivery(plan: dict, receipt_fields: dict, **state) -> None:
    """After a delivery: its receipt (marked delivered), then what the next run needs to know (segment id, last
    import)."""
    receipt(plan, **receipt_fields, delivered=True, delivered_at=dt.datetime.now(dt.UTC).isoformat())
    destination, name = plan["destination"], plan["name"]
    if destination == PERSONALIZE:
        write_state(PERSONALIZE, name, {"partition": plan["partition"], "mode": plan["mode"], **state})
    elif destination == PINPOINT and state.get("segment_id"):
        write_state(PINPOINT, name, {"partition": plan["partition"], **state})
    elif destination == PROFILES:
        defined = {r["params"]["SegmentDefinitionName"] for r in plan["requests"]
                   if r["operation"] == "CreateSegmentDefinition"}
        known = set(read_state(PROFILES, "segment_definitions").get("names", []))
        write_state(PROFILES, "segment_definitions", {"names": sorted(known | defined)})


# ---- import files and plans, the same for every destination

def score_columns() -> list[str]:
    """Per model, the profile columns sent as attributes: probability, decile and the three reasons."""
    return [f"{model}_{part}" for model in get_config().models.specs
            for part in ("probability", "decile", "reason_1", "reason_2", "reason_3")]


def text(series: pd.Series) -> pd.Series:
    """Values safe for an import CSV: no line breaks or tabs, at most MAX_VALUE characters, empty for null."""
    return (series.astype("string").fillna("").str.replace(r"[\r\n\t]+", " ", regex=True).str.slice(0, MAX_VALUE))


def write_parts(folder, frame: pd.DataFrame, max_bytes: int) -> list[str]:
    """Write `frame` as CSV files with a header each, none above max_bytes; the folder is replaced whole."""
    header = frame.columns.to_list()
    # records end at "\n" alone (text() leaves no line break in a value); str.splitlines would also cut a record
    # at U+2028, U+0085 and the like, which a name may hold, and a part could then end inside it
    body = [line + "\n" for line in frame.to_csv(index=False, header=False, lineterminator="\n").split("\n")[:-1]]
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


def plan_request(destination: str, day: dt.date, name: str, requests: list[dict], decision: dict,
                 files: list[str], **extra) -> dict:
    """Record a destination's requests in the attempt's outbox (planned, or not sent and why); the plan to send."""
    status = "planned" if decision["send"] else "not sent"
    outbox = write_outbox(destination, day, decision["attempt"], name, requests,
                          {"status": status, "sent": False, "delivered": False, "reason": decision["reason"]})
    return {"destination": destination, "partition": day.isoformat(), "name": name, "requests": requests,
            "files": files, "outbox": outbox, "attempt": decision["attempt"], **extra}


def sendable(plans: list[dict], decision: dict) -> list[dict]:
    return plans if decision["send"] else []


# ---- the import files' contracts: one reader and one error for every destination's checks
# (crosschannel.stages.activation.customer_profiles and .pinpoint name their rules)

class CsvContractError(ActivationError):
    """An import file breaks its destination's documented contract; names the file, line, column, expectation."""


def read_csv_file(url: str, destination: str) -> tuple[pd.DataFrame, str]:
    """A file as it is handed over: its UTF-8 text and its records as text ('' for an empty field)."""
    import pandas as pd

    data = storage.location(url).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvContractError(f"{destination}: {url}: byte {exc.start} is not UTF-8; the file must be UTF-8 "
                               "encoded") from None
    if not text.strip():
        raise CsvContractError(f"{destination}: {url}: empty; expected a header line and the records")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False), text


def record_lines(text: str) -> list[int]:
    """The line each record starts on (the header is line 1; a quoted line break moves the next records)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    starts, line = [], reader.line_num + 1
    for _ in reader:
        starts.append(line)
        line = reader.line_num + 1
    return starts


def refuse(destination: str, url: str, contract: str, problems: list[str], frame: pd.DataFrame | None = None,
           text: str = "", checks: list[tuple[str, str, pd.Series]] = ()) -> None:
    """Raise CsvContractError when there are file-level `problems` or a check (column, expected, mask of bad rows)
    finds a row, naming the file, each column, the first bad lines with their values, and what was expected."""
    found = [bad for _, _, bad in checks if bad.any()]
    if not problems and not found:
        return
    lines = record_lines(text) if found else []
    messages = list(problems)
    for column, expected, bad in checks:
        rows = [i for i, flag in enumerate(bad.to_list()) if flag]
        if rows:
            shown = ", ".join(f"line {lines[i]} {frame[column].iat[i]!r}" for i in rows[:3])
            messages.append(f"column {column!r}: {shown}{' ...' if len(rows) > 3 else ''} ({len(rows)} row(s)): "
                            f"expected {expected}")
    raise CsvContractError(f"{destination}: {url} breaks the {contract} contract: " + "; ".join(messages))


def not_matching(pattern) -> Callable[[pd.Series], pd.Series]:
    """Where a non-empty value does not match `pattern`."""
    return lambda values: values.ne("") & ~values.map(lambda v: bool(pattern.match(v))).astype(bool)


def not_number(values: pd.Series) -> pd.Series:
    """Where a non-empty value is not a finite number."""
    import pandas as pd

    numbers = pd.to_numeric(values.where(values.ne("")), errors="coerce")
    return values.ne("") & ~numbers.abs().lt(float("inf"))
