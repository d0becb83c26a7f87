"""Every place under the storage root, by zone: the one module that spells out folders and `dt=` partitions.

    landing/dms/<schema>/<table>/...                    DMS output as DMS writes it
    landing/manifests/dms/dt=D/, full_loads.json        what each partition landed
    landing/full_loads/dt=D/<table>/LOAD*.csv           the full load landed for D, kept as it was checked
    landing/segment/<source>/dt=D/                      Segment S3-destination files of the received day
    staging/<zone>/<name>/dt=D/                         SQL job results waiting for their gate
    trusted/<table>/dt=D/, features/customer/dt=D/      gated, published partitions
    ml/snapshots/dt=D/as_of=A/                          features as of past days (training)
    ml/<model>/datasets|models|scores/dt=D/, registry/  datasets, job outputs, scores, versions
    activation/<destination>/dt=D/attempt=A/, state/    each attempt's import files and outbox, what was last sent
    reports/dt=D/                                       gate results, Data Docs, model reports, summaries,
                                                        campaign readouts
    system/                                             rendered SQL, SageMaker source dirs, local stand-in state
    generator/                                          the simulator's latent state (never read by a stage)

Stage code asks for a place by what it is (`trusted("orders", day)`), never by building the path itself. The
same reports are also pages of the Airflow UI (`reports_view(day)`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.core.storage import zone

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

PARTITION_PREFIX = "dt="
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def partition_name(day: dt.date) -> str:
    """The folder name of one day's partition: dt=YYYY-MM-DD."""
    return f"{PARTITION_PREFIX}{day.isoformat()}"


def partition(*parts: str, day: dt.date) -> ObjectStoragePath:
    """The folder of one day's partition: <root>/<parts...>/dt=YYYY-MM-DD."""
    return zone(*parts, partition_name(day))


def partition_days(base: ObjectStoragePath) -> list[dt.date]:
    """The days of the dt=YYYY-MM-DD folders under `base` (committed or not), in order; other names are ignored."""
    if not base.exists():
        return []
    names = (p.name.removeprefix(PARTITION_PREFIX) for p in base.glob(f"{PARTITION_PREFIX}*"))
    return sorted(dt.date.fromisoformat(name) for name in names if _DAY.fullmatch(name))


def sibling(folder: ObjectStoragePath, day: dt.date) -> ObjectStoragePath:
    """The partition of `day` beside a partition folder (the previous day's, say)."""
    return folder.parent / partition_name(day)


# ---- landing
def dms_landing() -> ObjectStoragePath:
    """Where DMS writes: <root>/landing/dms/<schema>/ (the S3 target endpoint's bucket folder)."""
    return zone("landing", "dms", get_config().source.schema_name)


def dms_manifests() -> ObjectStoragePath:
    return zone("landing", "manifests", "dms")


def dms_manifest(day: dt.date) -> ObjectStoragePath:
    return partition("landing", "manifests", "dms", day=day)


def dms_full_load(day: dt.date) -> ObjectStoragePath:
    """The copy of the LOAD files that the full load of `day` landed: DMS writes a later reload over the same
    names, this copy never changes (a partition committed whole, one folder per table)."""
    return partition("landing", "full_loads", day=day)


def dms_full_loads() -> ObjectStoragePath:
    """The record of which partitions landed a full load, and its transfer time."""
    return dms_manifests() / "full_loads.json"


def segment_landing(day: dt.date | None = None) -> ObjectStoragePath:
    """<root>/landing/segment/<source>/ (the day's partition when `day` is given)."""
    base = zone("landing", "segment", get_config().segment.source_id)
    return base if day is None else base / partition_name(day)


# ---- staging, trusted and features
def trusted(name: str, day: dt.date, zone_name: str = "trusted") -> ObjectStoragePath:
    """A published partition: <root>/trusted/<name>/dt=D (or another zone, such as features)."""
    return partition(zone_name, name, day=day)


def candidate(name: str, day: dt.date, zone_name: str = "trusted", run: str = "") -> ObjectStoragePath:
    """Where a job's result waits for its gate; only a passing gate publishes it:
    <root>/staging/<zone>/<name>/dt=D/run=<hash of the Airflow run>/. Private to the run, so two runs of one
    partition never gate or publish each other's files."""
    folder = partition("staging", zone_name, name, day=day)
    return folder / f"run={run_hash(run)}" if run else folder


def features(day: dt.date | None = None) -> ObjectStoragePath:
    """<root>/features/customer/ (the day's partition when `day` is given)."""
    return zone("features", "customer") if day is None else trusted("customer", day, zone_name="features")


def features_candidate(day: dt.date, run: str = "") -> ObjectStoragePath:
    return candidate("customer", day, zone_name="features", run=run)


# ---- models and scores
def snapshot(day: dt.date, as_of: dt.date) -> ObjectStoragePath:
    return partition("ml", "snapshots", day=day) / f"as_of={as_of.isoformat()}"


def dataset(model: str, day: dt.date) -> ObjectStoragePath:
    return partition("ml", model, "datasets", day=day)


def model_output(model: str, day: dt.date) -> ObjectStoragePath:
    """Tuning and training job outputs."""
    return partition("ml", model, "models", day=day)


def registry(model: str) -> ObjectStoragePath:
    return zone("ml", model, "registry")


def scores(model: str, day: dt.date, part: str) -> ObjectStoragePath:
    """<root>/ml/<model>/scores/dt=D/<part>: input, output (the transform's) or scores (published)."""
    return partition("ml", model, "scores", day=day) / part


def scores_base(model: str) -> ObjectStoragePath:
    return zone("ml", model, "scores")


# ---- activation
def activation(destination: str, day: dt.date, *parts: str) -> ObjectStoragePath:
    return partition("activation", destination, day=day).joinpath(*parts)


ATTEMPT_PREFIX = "attempt="


def delivery(destination: str, day: dt.date, attempt: str, *parts: str) -> ObjectStoragePath:
    """One delivery attempt's files and outbox: <root>/activation/<destination>/dt=D/attempt=<id>/. Each attempt
    writes its own folder, so a re-run never overwrites what an earlier attempt sent or recorded."""
    return activation(destination, day, f"{ATTEMPT_PREFIX}{attempt}").joinpath(*parts)


def deliveries(destination: str, day: dt.date) -> list[ObjectStoragePath]:
    """Every attempt's folder of the day, oldest first (attempt ids begin with their UTC start time)."""
    folder = activation(destination, day)
    found = folder.glob(f"{ATTEMPT_PREFIX}*") if folder.exists() else []
    return sorted(found, key=lambda p: p.name)


def activation_state(destination: str, name: str) -> ObjectStoragePath:
    """What a destination last received (segment ids, last import, published traits)."""
    return zone("activation", destination, "state", name)


def audience_members(audience: str, day: dt.date) -> ObjectStoragePath:
    return partition("activation", "audiences", audience, day=day)


# ---- reports and system
def reports(day: dt.date, *parts: str) -> ObjectStoragePath:
    """<root>/reports/dt=D/...: gate results, Data Docs, model reports, activation summaries."""
    return partition("reports", day=day).joinpath(*parts)


def readouts(day: dt.date, *parts: str) -> ObjectStoragePath:
    """<root>/reports/dt=D/readouts/...: the campaign readouts that came due on D (readouts.json, readouts.html)."""
    return reports(day, "readouts", *parts)


def readout_groups(day: dt.date) -> ObjectStoragePath:
    """The treatment and control statistics of the readouts due on D (a committed partition: the SQL job's)."""
    return readouts(day, "groups")


def demo_summary() -> ObjectStoragePath:
    return zone("reports", "demo_summary.json")


def gate_report(day: dt.date, suite: str) -> ObjectStoragePath:
    return reports(day, "gates", f"{suite}.json")


def system(*parts: str) -> ObjectStoragePath:
    return zone("system", *parts)


def sql_file(day: dt.date, name: str) -> ObjectStoragePath:
    """A rendered SQL file, kept where its job reads it."""
    return partition("system", "sql", day=day) / name


def local_dms_task_state() -> ObjectStoragePath:
    """The local replication task's record (its DescribeReplicationTasks)."""
    return system("dms-local-task.json")


def generator(*parts: str) -> ObjectStoragePath:
    return zone("generator", *parts)


# ---- the reports view: the same reports, served by the bundle's plugin on the Airflow api-server

REPORTS_VIEW_PREFIX = "/crosschannel"  # where the plugin mounts its app (crosschannel.wiring.ui)


def airflow_ui() -> str:
    """The Airflow UI's address, `[api] base_url` (http://localhost:8080 when unset)."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")


def reports_view(day: dt.date) -> str:
    """The page of the day's reports in the Airflow UI (gates, Data Docs, models, audiences, receipts, readouts),
    behind Airflow's login: what a task that writes a report logs and returns."""
    return f"{airflow_ui()}{REPORTS_VIEW_PREFIX}/partitions/{day.isoformat()}/"
