"""A fixture builder: files written exactly as AWS DMS's S3 target endpoint writes them with the shipped endpoint
settings (include/dms/s3-target-settings.json), into the landing folder the bundle reads
(crosschannel.core.paths.dms_landing(): <root>/landing/dms/<schema>/, the endpoint's bucket folder).

What DMS documents, and what this writes:
- Full load: <table>/LOAD00000001.csv, LOAD00000002.csv, ... (an incrementing hexadecimal counter; DMS cuts files
  at MaxFileSize, the caller says where with `rows_per_file`). Every row has Op `I` (IncludeOpForFullLoad) and, in
  the TimestampColumnName column, the task's start time (UseTaskStartTimeForFullLoadTimestamp). A table with no
  rows gets no file. A reload (`reload-target`) writes its LOAD files under the same names, the old ones gone
  (../shared/formats.md).
- CDC: <table>/YYYY/MM/DD/<YYYYMMDD-HHMMSS + 3 or 4 digits of the second>.csv (DatePartitionEnabled,
  DatePartitionSequence YYYYMMDD, DatePartitionDelimiter SLASH). AWS's setting reference says the folders follow
  transaction commit dates; deployments see the date (and the name) the file is written, so with
  CdcMaxBatchInterval 3600 a file written after midnight holds the day before's last changes (../shared/formats.md,
  the README's "A day's last changes land with their day"). `cdc_file` therefore takes the write time and the
  changes' commit times separately. The first column is Op (I, U or D; a D row carries the row's image before
  the delete), then the commit time, then the columns.
- CSV: a header row (AddColumnName), the timestamp column as yyyy-MM-dd HH:mm:ss.SSSSSS, fields split by
  CsvDelimiter, rows ended by CsvRowDelimiter. RFC 4180 (Rfc4180, default true): a value holding a quote, a
  delimiter or a line break is enclosed in double quotes and every quote inside it is doubled. NULL is written as
  CsvNullValue, here the empty field; with it set to the empty string DMS treats the empty string as the null
  value, so an empty string and NULL land the same.

Values are given as the text DMS writes for them (the source's own rendering of numbers, dates, booleans) or None
for NULL: the builder only does what the endpoint settings decide.

Sources:
- https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Target.S3.html (file naming LOAD00000001.csv and
  20141029-1134010000.csv, <schema>/<table>/ layout, the Op column, bucketFolder)
- https://docs.aws.amazon.com/dms/latest/APIReference/API_S3Settings.html (AddColumnName, CsvNullValue,
  DatePartitionEnabled, IncludeOpForFullLoad, Rfc4180, TimestampColumnName, CdcMaxBatchInterval)
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/csv-null-value.html
  ("if you set this parameter value to the empty string, DMS treats the empty string as the null value")
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/-builder/rfc4180.html
  ("if the data has quotation marks or newline characters in it, DMS encloses the entire column with an
  additional pair of double quotation marks. Every quotation mark within the data is repeated twice")
- https://pub.dev/documentation/aws_dms_api/latest/dms-2016-01-01/S3Settings/timestampColumnName.html
  (transfer time for a full load, commit time for CDC, yyyy-MM-dd HH:mm:ss.SSSSSS)
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/use-task-start-time-for-full-load-timestamp.html
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/-builder/include-op-for-full-load.html
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/-builder/cdc-max-batch-interval.html
- https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/databasemigrationservice/aws.sdk.kotlin.services.databasemigrationservice.model/-s3-settings/-builder/date-partition-enabled.html
- https://repost.aws/knowledge-center/dms-cdc-files-target-s3 (CdcMaxBatchInterval, CdcMinFileSize: a file is
  written when either is reached)
- ../shared/formats.md, AWS DMS section (9-digit CDC names such as 20230905-151244585.csv, folders by write time)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from crosschannel.core import dms, paths, source
from crosschannel.core.config import get_config

STAMP = "%Y-%m-%d %H:%M:%S.%f"  # yyyy-MM-dd HH:mm:ss.SSSSSS, DMS's timestamp column
# The endpoint settings this builder writes for; others would need other files.
SUPPORTED = {"DataFormat": "csv", "CompressionType": "none", "AddColumnName": True, "IncludeOpForFullLoad": True,
             "DatePartitionEnabled": True, "DatePartitionSequence": "YYYYMMDD", "DatePartitionDelimiter": "SLASH",
             "UseTaskStartTimeForFullLoadTimestamp": True}


@dataclasses.dataclass(frozen=True)
class Change:
    """One captured change: Op I, U or D, its commit time at the source and the row image (column -> text or
    None for NULL; columns left out are NULL)."""

    op: str
    committed: dt.datetime
    row: dict[str, str | None]


class DmsFiles:
    """Writes a replication task's S3 output for the mapped tables of the configured storage root."""

    def __init__(self) -> None:
        path = get_config().dms.settings_path
        self.settings = json.loads(path.read_text())
        wrong = {k: self.settings.get(k) for k, v in SUPPORTED.items() if self.settings.get(k) != v}
        if wrong:
            raise ValueError(f"{path}: this builder writes DMS files for {SUPPORTED}, not {wrong}")
        self.delimiter = self.settings.get("CsvDelimiter", ",")
        self.row_end = self.settings.get("CsvRowDelimiter", "\n")
        self.null = self.settings.get("CsvNullValue", "NULL")  # DMS's default is the text NULL
        self.rfc4180 = self.settings.get("Rfc4180", True)

    def field(self, value: str | None) -> str:
        """One field as DMS writes it: NULL as CsvNullValue; quoted, quotes doubled, when RFC 4180 needs it."""
        if value is None:
            return self.null
        if self.rfc4180 and any(c in value for c in ('"', self.delimiter, "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    def _text(self, table: str, rows: list[tuple[str, dt.datetime, dict[str, str | None]]]) -> bytes:
        tbl = source.table(table)
        unknown = {k for _, _, row in rows for k in row} - {c.name for c in tbl.columns}
        if unknown:
            raise ValueError(f"table {table} has no columns {sorted(unknown)}")
        header = ["Op", self.settings["TimestampColumnName"], *(c.name for c in tbl.columns)]
        lines = [self.delimiter.join(header)]
        for op, when, row in rows:
            values = [op, when.strftime(STAMP), *(row.get(c.name) for c in tbl.columns)]
            lines.append(self.delimiter.join(self.field(v) for v in values))
        return "".join(line + self.row_end for line in lines).encode("utf-8")

    def full_load(self, started: dt.datetime, tables: dict[str, list[dict[str, str | None]]],
                  rows_per_file: int = 1000) -> dict[str, list[str]]:
        """A full load (or a reload) of every mapped table, started at `started`: each table's LOAD files replace
        the ones before; a table left out, or without rows, has none. Returns the names written per table."""
        unknown = set(tables) - set(dms.mapped_tables())
        if unknown:
            raise ValueError(f"tables {sorted(unknown)} are not in the DMS table mappings")
        written: dict[str, list[str]] = {}
        for name in dms.mapped_tables():
            folder = paths.dms_landing() / name
            for old in folder.glob("LOAD*.csv") if folder.exists() else []:
                old.unlink()
            rows = tables.get(name, [])
            names = []
            for number, start in enumerate(range(0, len(rows), rows_per_file), start=1):
                part = [("I", started, row) for row in rows[start:start + rows_per_file]]
                folder.mkdir(parents=True, exist_ok=True)
                names.append(f"LOAD{number:08X}.csv")
                (folder / names[-1]).write_bytes(self._text(name, part))
            written[name] = names
        return written

    def cdc_file(self, table: str, written: dt.datetime, changes: list[Change], digits: int = 9) -> str:
        """A CDC file written at `written` (its date folder and name), holding `changes` in capture order, named
        with milliseconds (9 digits after the dash) or ten-thousandths of a second (10). Returns its path below
        the table's folder."""
        if digits not in (9, 10):
            raise ValueError(f"digits={digits}: DMS names CDC files with 9 or 10 digits after the dash")
        fraction = f"{written.microsecond // 1000:03d}" if digits == 9 else f"{written.microsecond // 100:04d}"
        bad = [c.op for c in changes if c.op not in ("I", "U", "D")]
        if bad:
            raise ValueError(f"Op {bad}: DMS writes I, U or D")
        relative = f"{written:%Y/%m/%d}/{written:%Y%m%d-%H%M%S}{fraction}.csv"
        path = paths.dms_landing() / table / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self._text(table, [(c.op, c.committed, c.row) for c in changes]))
        return relative
