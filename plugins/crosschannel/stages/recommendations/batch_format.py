"""Amazon Personalize's batch inference JSON lines, written and read back in one place.

Input (one line per user or item, the job's `jobInput`):   {"userId": "42"}   or   {"itemId": "17"}, each
possibly with the values of the filter's placeholders:
    {"userId": "42", "filterValues": {"LOCATIONS": "\"S7\",\"ONLINE\""}}
Output (`<input file name>.out` in the job's `jobOutput` folder), one line per input line, compact as Personalize
writes it:

    {"input":{"userId":"42"},"output":{"recommendedItems":["7","3"],"scores":[0.0152238,0.0069081]},"error":null}
    {"input":{"itemId":"17"},"output":{"recommendedItems":["9","4"],"scores":[0.1,0.05]},"error":null}

Similar items (and popularity) lines carry no `scores`; user personalization's may carry fewer scores than items
(the placeholder items a filter makes it add have none); a related-items line may leave `error` out. A line
Personalize could not answer carries the reason in `error` (a string) and no recommendations. Every reader
of a job's output (the delivery of the recommendations, the tests, the aws target's job output) parses it with
`read_output`, which checks each line and names the file and line of the first one that breaks the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from crosschannel.core import storage
from crosschannel.core.errors import DataError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

USER, ITEM = "userId", "itemId"
OUTPUT_SUFFIX = ".out"  # Personalize names the output file after the input file: users.json -> users.json.out
SCORE_DIGITS = 7  # the precision of Personalize's scores


class BatchFormatError(DataError, ValueError):
    """A batch inference file breaks Personalize's format; the message names the file and the line."""


class BatchRecord(NamedTuple):
    """One line of a job's output: whose recommendations (`key` is userId or itemId), the items best first, their
    scores, and Personalize's error for the line (None when it was answered)."""

    key: str
    id: str
    items: tuple[str, ...]
    scores: tuple[float, ...]  # the first len(scores) items' (none for similar items)
    error: str | None


class BatchInput(NamedTuple):
    """A job's input file: its key (userId or itemId), the ids in file order and each line's filterValues."""

    key: str
    ids: list[str]
    filter_values: list[dict[str, str] | None]


def _dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def input_line(key: str, value: str | int, filter_values: dict[str, str] | None = None) -> str:
    return _dumps({key: str(value), **({"filterValues": filter_values} if filter_values else {})})


def filter_value(values: Iterable[str]) -> str:
    """A placeholder's value as a filter takes it: each value in escaped double quotes, comma-separated."""
    return ",".join(json.dumps(str(v)) for v in values)


def output_line(key: str, value: str | int, items: Sequence, scores: Sequence[float] | None) -> str:
    """One answered output line; `scores` are rounded as Personalize rounds them (None: the recipe gives none)."""
    if scores is not None and len(items) != len(scores):
        raise ValueError(f"{key} {value}: {len(items)} items but {len(scores)} scores")
    output = {"recommendedItems": [str(i) for i in items]}
    if scores is not None:
        output["scores"] = [round(float(s), SCORE_DIGITS) for s in scores]
    return _dumps({"input": {key: str(value)}, "output": output, "error": None})


def error_line(key: str, value: str | int, reason: str) -> str:
    return _dumps({"input": {key: str(value)}, "output": None, "error": reason})


def write_lines(path: ObjectStoragePath, lines: Iterable[str]) -> int:
    """Write JSON lines (each ended by a newline) to a file; the number of lines."""
    text = "".join(f"{line}\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text.count("\n")


def write_input(path: ObjectStoragePath, key: str, ids: Iterable,
                filter_values: Iterable[dict[str, str] | None] | None = None) -> int:
    """A job's input file: one {"userId": ...} or {"itemId": ...} line per id, in the given order, each with its
    filterValues when given."""
    _check_key(key, "write_input")
    ids = list(ids)
    values = list(filter_values) if filter_values is not None else [None] * len(ids)
    if len(values) != len(ids):
        raise ValueError(f"write_input: {len(ids)} ids but {len(values)} filterValues")
    return write_lines(path, (input_line(key, value, given) for value, given in zip(ids, values, strict=True)))


def output_name(input_path: ObjectStoragePath) -> str:
    return input_path.name + OUTPUT_SUFFIX


def read_input(path: ObjectStoragePath) -> BatchInput:
    """A job's input file: its key (userId or itemId), the ids in file order and each line's filterValues (a map of
    placeholder names to strings, or None)."""
    where = storage.url_of(path)
    key, ids, values = None, [], []
    for number, line in _lines(path):
        record = _object(line, where, number)
        given = record.get("filterValues")
        keys = set(record) - {"filterValues"}
        if len(keys) != 1 or next(iter(keys)) not in (USER, ITEM):
            raise BatchFormatError(f"{where}:{number}: expected {{\"userId\": ...}} or {{\"itemId\": ...}} (and "
                                   f"filterValues), got the keys {sorted(record)}")
        if given is not None and (not isinstance(given, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in given.items())):
            raise BatchFormatError(f"{where}:{number}: filterValues must map placeholder names to strings, got "
                                   f"{given!r}")
        line_key = next(iter(keys))
        key = _same_key(key, line_key, where, number)
        ids.append(_id(record[line_key], line_key, where, number))
        values.append(given)
    if key is None:
        raise BatchFormatError(f"{where}: no input line (a batch inference job needs at least one)")
    return BatchInput(key, ids, values)


def read_output(path: ObjectStoragePath) -> list[BatchRecord]:
    """Every line of a job's output, checked: a JSON object with `input`, `output` and `error` (null or left out),
    nothing else; `input` one userId or itemId (the same key on every line; filterValues echoed are allowed);
    answered lines with distinct item ids (strings) and at most as many finite scores (none for similar items), in
    the job's order (best first); unanswered lines with a non-empty error string and no recommendations. Fails on
    the first bad line, naming the file and the line number."""
    where = storage.url_of(path)
    key, records = None, []
    for number, line in _lines(path):
        record = _object(line, where, number)
        if not {"input"} <= set(record) <= {"input", "output", "error"} or len(record) < 2:
            raise BatchFormatError(f"{where}:{number}: expected the keys ['error', 'input', 'output'], got "
                                   f"{sorted(record)}")
        given = record["input"]
        if isinstance(given, dict):
            given = {k: v for k, v in given.items() if k != "filterValues"}
        if not isinstance(given, dict) or len(given) != 1 or next(iter(given)) not in (USER, ITEM):
            raise BatchFormatError(f"{where}:{number}: input must be {{\"userId\": ...}} or {{\"itemId\": ...}}, "
                                   f"got {given!r}")
        line_key, value = next(iter(given.items()))
        key = _same_key(key, line_key, where, number)
        records.append(_record(line_key, _id(value, line_key, where, number), record, where, number))
    return records


def _record(key: str, value: str, record: dict, where: str, number: int) -> BatchRecord:
    error, output = record.get("error"), record.get("output")
    if error is not None:
        if not isinstance(error, str) or not error.strip():
            raise BatchFormatError(f"{where}:{number}: error must be null or a non-empty string, got {error!r}")
        if output not in (None, {}):
            raise BatchFormatError(f"{where}:{number}: a line with an error carries no output, got {output!r}")
        return BatchRecord(key, value, (), (), error)
    if not isinstance(output, dict) or not {"recommendedItems"} <= set(output) <= {"recommendedItems", "scores"}:
        raise BatchFormatError(f"{where}:{number}: output must hold recommendedItems (and scores), got "
                               f"{sorted(output) if isinstance(output, dict) else output!r}")
    items, scores = output["recommendedItems"], output.get("scores", [])
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise BatchFormatError(f"{where}:{number}: recommendedItems must be a list of non-empty strings")
    if len(set(items)) != len(items):
        raise BatchFormatError(f"{where}:{number}: recommendedItems repeats an item")
    if (not isinstance(scores, list) or len(scores) > len(items)
            or not all(isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) for s in scores)):
        raise BatchFormatError(f"{where}:{number}: scores must be at most {len(items)} finite numbers, one per item")
    return BatchRecord(key, value, tuple(items), tuple(float(s) for s in scores), None)


def _lines(path: ObjectStoragePath):
    where = storage.url_of(path)
    if not path.exists():
        raise BatchFormatError(f"{where}: no such batch inference file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BatchFormatError(f"{where}: not UTF-8 ({exc})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    yield from enumerate(lines, start=1)


def _object(line: str, where: str, number: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BatchFormatError(f"{where}:{number}: not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise BatchFormatError(f"{where}:{number}: expected a JSON object, got {type(record).__name__}")
    return record


def _id(value, key: str, where: str, number: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BatchFormatError(f"{where}:{number}: {key} must be a non-empty string, got {value!r}")
    return value


def _same_key(seen: str | None, key: str, where: str, number: int) -> str:
    if seen is not None and key != seen:
        raise BatchFormatError(f"{where}:{number}: {key} in a file of {seen} lines (one job, one kind of input)")
    return key


def _check_key(key: str, caller: str) -> None:
    if key not in (USER, ITEM):
        raise ValueError(f"{caller}: key {key!r}, expected {USER!r} or {ITEM!r}")
