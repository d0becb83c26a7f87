"""AWS DMS's S3 target layout, as both targets write and read it (include/dms/s3-target-settings.json).

    <schema>/<table>/LOAD00000001.csv ...          full load (hex counter), Op=I on every row
    <schema>/<table>/YYYY/MM/DD/YYYYMMDD-HHMMSSfff[f].csv CDC, in folders by write date
    CSV with a header: Op, <TimestampColumnName>, then the table's columns; NULL is an empty field.

The timestamp column is the transfer time for the full load and the source commit time for CDC. The
partitions that landed a full load are recorded in <root>/landing/manifests/dms/full_loads.json.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re

import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError

FULL_LOAD_TYPES = ("start-replication", "reload-target")
STOPPED_AT_STOP_POSITION = "Stop Reason STOPPED_AT_COMMIT_TIME"  # DescribeReplicationTasks' StopReason
START_TYPES = (*FULL_LOAD_TYPES, "resume-processing")
LOAD_FILE = re.compile(r"^LOAD[0-9A-F]{8}\.csv$")
# CDC files are named by their write time, with milliseconds (9 digits after the dash, as DMS names them) or
# ten-thousandths (10): 20230905-151244585.csv, 20141029-1134010000.csv
CDC_FILE = re.compile(r"^(\d{8})-(\d{9,10})\.csv$")


def cdc_order(name: str) -> tuple[str, str]:
    """The order of CDC files in time, whatever the precision of their names (a string sort is not)."""
    date, time = CDC_FILE.match(name).groups()
    return date, time.ljust(10, "0")


class DmsLandingError(DataError, ValueError):
    """The landed DMS files are missing, unreadable or hold bad rows; the message names file, line, column."""


# What the readers of DMS's files rely on, as the S3 target endpoint must be configured (DMS's own defaults differ:
# CsvNullValue defaults to the text NULL, which would land as the string 'NULL' in every empty column).
REQUIRED_SETTINGS = {"DataFormat": "csv", "CsvDelimiter": ",", "CsvRowDelimiter": "\n", "CsvNullValue": "",
                     "AddColumnName": True, "IncludeOpForFullLoad": True, "DatePartitionEnabled": True,
                     "DatePartitionSequence": "YYYYMMDD", "DatePartitionDelimiter": "SLASH",
                     "UseTaskStartTimeForFullLoadTimestamp": True}


@functools.cache
def settings() -> dict:
    """The S3 target endpoint settings (include/dms/s3-target-settings.json), checked for what the readers need."""
    path = get_config().dms.settings_path
    found = json.loads(path.read_text())
    wrong = {key: found.get(key, "(not set)") for key, value in REQUIRED_SETTINGS.items() if found.get(key) != value}
    if wrong or "TimestampColumnName" not in found:
        expected = {key: REQUIRED_SETTINGS[key] for key in wrong}
        raise DmsLandingError(f"{path}: the S3 target endpoint settings {wrong} must be {expected}"
                              + ("" if "TimestampColumnName" in found else "; TimestampColumnName must be set"))
    return found


def mapped_tables() -> list[str]:
    """Tables the DMS table mappings include for the configured schema, in source order."""
    cfg = get_config()
    path = cfg.dms.table_mappings_path
    rules = json.loads(path.read_text()).get("rules", [])
    included = {
        r["object-locator"]["table-name"]
        for r in rules
        if r.get("rule-type") == "selection" and r.get("rule-action") == "include"
        and r["object-locator"].get("schema-name") in (cfg.source.schema_name, "%")
    }
    known = [t.name for t in source.RETAIL_TABLES if t.name in included or "%" in included]
    if not known:
        raise DmsLandingError(f"{path}: no selection rule includes a table of schema {cfg.source.schema_name!r}")
    return known


def cdc_stop_position(day: dt.date) -> str:
    """DMS CdcStopPosition for the partition: the first commit at or after the end of the day (UTC).

    Commit time, not server time: the CDC folders are by commit date, so the task must have read every
    commit of the day, however late it reads them, before the partition's manifest is written.
    """
    return "commit_time:" + dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)).strftime("%Y-%m-%dT%H:%M:%S")


def header_for(tbl: sa.Table) -> list[str]:
    return ["Op", settings()["TimestampColumnName"], *(c.name for c in tbl.columns)]


def full_load_partitions() -> dict[str, dict]:
    """The partitions whose run landed a full load, with its transfer time: {"2026-11-01": {"ts": ...}}."""
    path = paths.dms_full_loads()
    return storage.read_json(path) if path.exists() else {}
