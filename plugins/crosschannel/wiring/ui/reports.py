"""What the reports view can show for one partition, read through crosschannel.core.storage (file:// and s3://).

A request names a day, a kind and a name; `locate` maps them onto the fixed places crosschannel.core.paths gives
and nothing else, so no request reaches a file outside the partition's reports (or a model's registry):

    gates/<suite>.json                         paths.gate_report(day, suite)
    data_docs/<file>, data_docs_derived/<file> a file of that Data Docs site's committed version
    models/<model>.html                        the model report of a training day
    models/<model>/<version>.json              the card of a registry version trained on the day
    activation/audiences.json, summary.json    treatment/control counts, each destination's files and receipts
    readouts/readouts.json, readouts.html      the campaign readouts due on the day

A name is refused (None: the view answers 404) unless every segment is a plain file name: no `..`, no absolute
path, no empty segment, nothing percent-encoded (the server has decoded the URL once already) or hidden.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

DOCS_SITES = ("data_docs", "data_docs_derived")
ACTIVATION_FILES = ("audiences.json", "summary.json")
READOUT_FILES = ("readouts.json", "readouts.html")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_VERSION = re.compile(r"[a-z]\d{4,}")


def parse_day(value: str) -> dt.date | None:
    """The day of a YYYY-MM-DD string, None for anything else."""
    if not _DAY.fullmatch(value or ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def safe_parts(name: str) -> list[str] | None:
    """The segments of a relative file name, or None when any could leave its folder or is not a plain name."""
    parts = (name or "").split("/")
    if not all(_NAME.fullmatch(part) and ".." not in part for part in parts):
        return None
    return parts


def days() -> list[dt.date]:
    """The partitions that have reports, newest first."""
    return sorted(paths.partition_days(paths.zone("reports")), reverse=True)


def _models() -> list[str]:
    return sorted(get_config().models.specs)


def locate(day: dt.date, kind: str, name: str) -> ObjectStoragePath | None:
    """The file a request names, or None when it names nothing the view serves."""
    parts = safe_parts(name)
    if parts is None:
        return None
    single = parts[0] if len(parts) == 1 else None
    if kind == "gates" and single and single.endswith(".json"):
        return paths.gate_report(day, single.removesuffix(".json"))
    if kind in DOCS_SITES:
        site = paths.reports(day, kind)
        return _inside(storage.resolve(site), parts) if storage.is_committed(site) else None
    if kind == "activation" and single in ACTIVATION_FILES:
        return paths.reports(day, "activation", single)
    if kind == "readouts" and single in READOUT_FILES:
        return paths.readouts(day, single)
    if kind == "models" and single and single.removesuffix(".html") in _models() and single.endswith(".html"):
        return paths.reports(day, "models", single)
    if kind == "models" and len(parts) == 2 and parts[0] in _models() and parts[1].endswith(".json"):
        version = parts[1].removesuffix(".json")
        return _card(parts[0], version) if version in trained_versions(parts[0], day) else None
    return None


def _inside(base: ObjectStoragePath, parts: list[str]) -> ObjectStoragePath | None:
    """base/parts, checked once more to lie below base (the names were checked already: defence in depth)."""
    target = base.joinpath(*parts)
    return target if target.path.startswith(base.path.rstrip("/") + "/") else None


def _card(model: str, version: str) -> ObjectStoragePath:
    return storage.resolve(paths.registry(model) / version) / "card.json"


def trained_versions(model: str, day: dt.date) -> list[str]:
    """The registry versions of `model` trained on `day` (the challenger and the fitted baseline); only a training
    day has a model report, so other days read nothing from the registry."""
    if not paths.reports(day, "models", f"{model}.html").exists():
        return []
    registry = paths.registry(model)
    found = []
    for folder in sorted(registry.iterdir() if registry.exists() else [], key=lambda p: p.name, reverse=True):
        if not _VERSION.fullmatch(folder.name) or not storage.is_committed(folder):
            continue
        card = storage.read_json(_card(model, folder.name))
        if card.get("training_partition") == day.isoformat():
            found.append(folder.name)
        elif card.get("training_partition", "") < day.isoformat():
            break  # versions are numbered in training order: older ones were trained earlier
    return sorted(found)


def _read(path: ObjectStoragePath) -> Any:
    return storage.read_json(path) if path.exists() else None


def overview(day: dt.date) -> dict:
    """Everything the partition's page shows, with each file's name for `locate`."""
    gates_folder = paths.reports(day, "gates")
    gates = []
    for path in sorted(gates_folder.glob("*.json") if gates_folder.exists() else [], key=lambda p: p.name):
        result = storage.read_json(path)
        failed = [*result.get("failed_critical", []), *result.get("failed_warning", [])]
        named = [" ".join(str(x) for x in (f.get("expectation"), f.get("column")) if x) if isinstance(f, dict)
                 else str(f) for f in failed]  # the score gate records its failures as sentences
        gates.append({"suite": result.get("suite", path.stem), "success": result.get("success"),
                      "rows": result.get("rows"), "expectations": result.get("expectations"),
                      "failed_critical": len(result.get("failed_critical", [])),
                      "failed_warning": len(result.get("failed_warning", [])),
                      "failed": named, "skipped": [s.get("reason", "") for s in result.get("skipped", [])],
                      "file": f"gates/{path.name}"})
    docs = {site: f"{site}/index.html" for site in DOCS_SITES if storage.is_committed(paths.reports(day, site))}
    models = {}
    for model in _models():
        if paths.reports(day, "models", f"{model}.html").exists():
            models[model] = {"report": f"models/{model}.html",
                             "cards": {v: f"models/{model}/{v}.json" for v in trained_versions(model, day)}}
    audiences = _read(paths.reports(day, "activation", "audiences.json"))
    summary = _read(paths.reports(day, "activation", "summary.json"))
    readouts = _read(paths.readouts(day, "readouts.json"))
    return {
        "partition": day.isoformat(), "gates": gates, "data_docs": docs, "models": models,
        "audiences": audiences and {"holdout_percent": audiences.get("holdout_percent"),
                                    "groups": audiences.get("audiences", {}),
                                    "skipped": audiences.get("skipped", {}),
                                    "file": "activation/audiences.json"},
        "activation": summary and {"decision": summary.get("decision", {}),
                                   "destinations": summary.get("destinations", {}),
                                   "file": "activation/summary.json"},
        "readouts": readouts and {"readouts": len(readouts.get("readouts", [])),
                                  "significant": sum(bool(r.get("significant")) for r in readouts.get("readouts", [])),
                                  "skipped": len(readouts.get("skipped", [])),
                                  "file": "readouts/readouts.json",
                                  "page": "readouts/readouts.html"
                                  if paths.readouts(day, "readouts.html").exists() else None},
    }
