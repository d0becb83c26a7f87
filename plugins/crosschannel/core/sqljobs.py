"""A SQL job: one rendered file of include/sql/, its named inputs and one output partition.

The same job arguments drive both targets. On aws they are the `script_args` of the generic Glue 5.x job
(include/glue/run_sql.py); on local `run_local()` reads the same inputs into DuckDB in the worker. The
rendered SQL is kept under <root>/system/sql/dt=YYYY-MM-DD/ on both targets, so what ran for a partition
can always be read back.

Inputs (the `--inputs` JSON): {"<view>": {"format": "csv" | "dms_csv" | "json_lines" | "parquet", "paths": [...],
"schema": ddl}}. Glue refuses a run whose arguments exceed 260 KB in all (its job-parameters documentation), and a
merge lists every DMS file since the full load (up to 24 a day per table): inputs over INLINE_INPUTS_BYTES are
written beside the rendered SQL (<name>.inputs.json) and passed as `--inputs_path` instead.
    dms_csv  DMS CSV files with a header, read as text, plus _file_seq (the file's place in `paths`) and
             _row_seq (increasing with the row's place in its file)
    json_lines  gzip files of one JSON document per line (Segment's S3 destination), one row per non-blank line:
             `line` (its text), _file_seq and _row_seq as for dms_csv; the SQL parses them
    parquet  partition folders (or files) read as one table; with no paths, an empty table of `schema`
             (a DDL such as "anonymous_id STRING, customer_id BIGINT"), e.g. on the first day
    csv      SageMaker CSV files (no header, an empty field is a null, RFC 4180 quoting) with the columns and
             types of `schema`, e.g. a batch transform's output

Output: the partition committed whole, as Parquet (rows sorted by every column, so a re-run writes the same file);
with `output_format="csv"`, as SageMaker CSV (no header, a null as an empty field, rows in the SQL's ORDER BY);
with `output_format="text"`, the SQL's one text column as lines (rows in the SQL's ORDER BY, each ended by "\n":
a file the SQL formats itself, such as a Personalize import CSV); optionally with a manifest.json committed beside
the data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, storage
from crosschannel.core.errors import DataError, MissingPartition

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath


class SqlJobError(DataError, RuntimeError):
    """A SQL job could not run; the message names the SQL file, input or output."""


def upload_sql(day: dt.date, name: str, sql: str) -> ObjectStoragePath:
    """Keep a rendered SQL file where the job reads it: <root>/system/sql/dt=YYYY-MM-DD/<name>."""
    path = paths.sql_file(day, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


def parquet(folders: list[ObjectStoragePath], schema: str | None = None) -> dict:
    """Partition folders as a parquet input: each committed one by its current version (what the job must read)."""
    spec = {"format": "parquet", "paths": [storage.url_of(storage.resolve(f)) for f in folders]}
    return {**spec, "schema": schema} if schema else spec


def dms_csv(files: list[ObjectStoragePath]) -> dict:
    return {"format": "dms_csv", "paths": [storage.url_of(f) for f in files]}


JSON_LINES_SCHEMA = "line STRING, _file_seq BIGINT, _row_seq BIGINT"  # also the empty table of a day with no file


def json_lines(files: list[ObjectStoragePath]) -> dict:
    return {"format": "json_lines", "paths": [storage.url_of(f) for f in files], "schema": JSON_LINES_SCHEMA}


def job(day: dt.date, name: str, sql: str, inputs: dict[str, dict], output: ObjectStoragePath, *,
        output_format: str = "parquet", manifest: dict | None = None) -> dict:
    """The job's arguments (Glue's `script_args`), after storing the rendered SQL as `name`."""
    if output_format not in OUTPUT_FORMATS:
        raise SqlJobError(f"{name}: output format {output_format!r}, expected one of {OUTPUT_FORMATS}")
    args = {"--sql_path": storage.url_of(upload_sql(day, name, sql))}
    text = json.dumps(inputs)
    if len(text.encode()) > INLINE_INPUTS_BYTES:
        args["--inputs_path"] = storage.url_of(upload_sql(day, f"{name}.inputs.json", text))
    else:
        args["--inputs"] = text
    args["--output_path"] = storage.url_of(output)
    if output_format != "parquet":
        args["--output_format"] = output_format
    if manifest is not None:
        args["--manifest"] = storage.json_text(manifest)  # as storage.write_json writes it
    return args


OUTPUT_FORMATS = ("parquet", "csv", "text")
INLINE_INPUTS_BYTES = 64 * 1024  # a quarter of Glue's 260 KB for all of a run's arguments


def job_inputs(script_args: dict) -> dict:
    """A job's inputs, given inline (`--inputs`) or in a file (`--inputs_path`)."""
    if "--inputs" in script_args:
        return json.loads(script_args["--inputs"])
    return json.loads(storage.location(script_args["--inputs_path"]).read_text())


_ARROW_TYPES = {"STRING": "string", "BIGINT": "int64", "INT": "int32", "DOUBLE": "float64", "BOOLEAN": "bool_",
                "DATE": "date32"}


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    name = name.strip().upper()
    if name == "TIMESTAMP":
        return pa.timestamp("us")
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", name)
    if decimal:
        return pa.decimal128(int(decimal[1]), int(decimal[2]))
    if name not in _ARROW_TYPES:
        raise SqlJobError(f"schema type {name!r}: expected one of {sorted(_ARROW_TYPES)}, TIMESTAMP or DECIMAL(p, s)")
    return getattr(pa, _ARROW_TYPES[name])()


def empty_table(schema: str) -> pa.Table:
    """An empty Arrow table from a DDL column list ("a STRING, b DECIMAL(12, 2)")."""
    import pyarrow as pa

    columns = re.findall(r"(\w+)\s+(\w+(?:\(\s*\d+\s*,\s*\d+\s*\))?)", schema)
    return pa.schema([(name, _arrow_type(kind)) for name, kind in columns]).empty_table()


def read_parquet(urls: list[str]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for url in urls:
        path = storage.resolve(storage.location(url))
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise MissingPartition(f"{url}: no Parquet file in {storage.url_of(path)} (a committed partition holds at "
                                   "least one; was its marker or version folder changed by hand?)")
        for file in files:
            with file.open("rb") as handle:
                parts.append(pq.read_table(handle))
    return pa.concat_tables(parts, promote_options="permissive")


def read_dms_csv(urls: list[str]) -> pa.Table:
    import csv as stdlib_csv

    import pyarrow as pa
    from pyarrow import csv

    parts = []
    for file_seq, url in enumerate(urls):
        with storage.location(url).open("rb") as handle:
            names = next(stdlib_csv.reader([handle.readline().decode()]))
            handle.seek(0)
            part = csv.read_csv(handle, parse_options=csv.ParseOptions(newlines_in_values=True),  # RFC 4180, as DMS
                                convert_options=csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                                   strings_can_be_null=True, null_values=[""]))
        parts.append(part.append_column("_file_seq", pa.array([file_seq] * part.num_rows, pa.int64()))
                     .append_column("_row_seq", pa.array(range(part.num_rows), pa.int64())))
    return pa.concat_tables(parts, promote_options="permissive")


def read_json_lines(urls: list[str]) -> pa.Table:
    """Each non-blank line of the gzip files as text (not parsed: the SQL does), with its file and line."""
    import gzip

    import pyarrow as pa

    parts = []
    for file_seq, url in enumerate(urls):
        with storage.location(url).open("rb") as handle:
            lines = gzip.decompress(handle.read()).split(b"\n")
        rows = [i for i, line in enumerate(lines) if line.strip()]
        try:
            text = pa.array([lines[i] for i in rows], pa.binary()).cast(pa.string())
        except pa.ArrowInvalid as exc:
            raise SqlJobError(f"{url}: a line is not UTF-8 text ({exc})") from exc
        parts.append(pa.table({"line": text, "_file_seq": pa.array([file_seq] * len(rows), pa.int64()),
                               "_row_seq": pa.array(rows, pa.int64())}))
    return pa.concat_tables(parts)


def read_csv(urls: list[str], schema: str) -> pa.Table:
    import pyarrow as pa
    from pyarrow import csv

    parts = [empty_table(schema)]  # an empty file (a transform of no line) is no row, not an error
    types = dict(zip(parts[0].schema.names, parts[0].schema.types, strict=True))
    for url in urls:
        with storage.location(url).open("rb") as handle:
            if not handle.read(1):
                continue
            handle.seek(0)
            try:
                parts.append(csv.read_csv(handle, read_options=csv.ReadOptions(column_names=list(types)),
                                          convert_options=csv.ConvertOptions(column_types=types,
                                                                             strings_can_be_null=True,
                                                                             null_values=[""])))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise SqlJobError(f"{url}: not CSV of {schema} ({exc})") from exc
    return pa.concat_tables(parts)


def read_input(view: str, spec: dict) -> pa.Table:
    if not spec["paths"]:
        if "schema" not in spec:
            raise SqlJobError(f"input {view!r}: no paths and no schema to make it empty with")
        return empty_table(spec["schema"])
    if spec["format"] == "parquet":
        return read_parquet(spec["paths"])
    if spec["format"] == "dms_csv":
        return read_dms_csv(spec["paths"])
    if spec["format"] == "json_lines":
        return read_json_lines(spec["paths"])
    if spec["format"] == "csv":
        return read_csv(spec["paths"], spec["schema"])
    raise SqlJobError(f"input {view!r}: format {spec['format']!r}, expected csv, dms_csv, json_lines or parquet")


def read_partition(folder: ObjectStoragePath) -> pa.Table:
    """A partition's Parquet files as one table."""
    return read_parquet([storage.url_of(folder)])


def column_names(folder: ObjectStoragePath) -> list[str]:
    """The columns of a committed partition, from its first Parquet file's footer (no data is read)."""
    import pyarrow.parquet as pq

    for file in sorted(storage.resolve(folder).glob("*.parquet")):
        with file.open("rb") as handle:
            return list(pq.ParquetFile(handle).schema_arrow.names)
    return []


def column_min(folder: ObjectStoragePath, column: str):
    """The least non-null value of a column of a committed partition (None if it has none), from the Parquet
    files' statistics where every row group has them (only the footers are read: on aws not the data into the
    worker), else from the column itself."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found = []
    for file in sorted(storage.resolve(folder).glob("*.parquet")):
        with file.open("rb") as handle:
            meta = pq.ParquetFile(handle).metadata
            leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
            if column not in leaves:
                raise SqlJobError(f"{storage.url_of(file)}: no column {column!r}")
            groups = [meta.row_group(i).column(leaves.index(column)) for i in range(meta.num_row_groups)]
            if any(g.statistics is None or (not g.statistics.has_min_max and g.statistics.null_count != g.num_values)
                   for g in groups):
                handle.seek(0)
                found.append(pc.min(pq.read_table(handle, columns=[column]).column(column)).as_py())
            else:
                found += [g.statistics.min for g in groups if g.statistics.has_min_max]
    found = [value for value in found if value is not None]
    return min(found) if found else None


def write_partition(folder: ObjectStoragePath, table: pa.Table) -> None:
    """Commit `table` as the partition's one Parquet file, replacing the partition whole."""
    import pyarrow.parquet as pq

    with storage.committing(folder) as staging, (staging / "part-00000.parquet").open("wb") as handle:
        pq.write_table(table, handle)


def run_local(script_args: dict) -> int:
    """The local target's run of a job: DuckDB over the inputs, the output partition committed whole."""
    import duckdb

    sql_path = storage.location(script_args["--sql_path"])
    inputs = {view: read_input(view, spec) for view, spec in job_inputs(script_args).items()}
    try:
        table = engines.run_duckdb(sql_path.read_text(), inputs)
    except duckdb.ConversionException as exc:
        raise SqlJobError(f"{storage.url_of(sql_path)}: an input value does not fit its column's type ({exc}); "
                          f"output {script_args['--output_path']} left as it was") from exc
    except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as exc:
        # a column or input the SQL names is not there (e.g. a feature of models.features that
        # customer_features.sql does not compute): a retry cannot help
        raise SqlJobError(f"{storage.url_of(sql_path)}: the SQL does not fit its inputs ({', '.join(inputs)}): {exc}; "
                          f"output {script_args['--output_path']} left as it was") from exc
    output = storage.location(script_args["--output_path"])
    if script_args.get("--output_format", "parquet") == "parquet":
        write_partition(output, in_stable_order(table))
        return table.num_rows
    from crosschannel.core import sagemaker

    with storage.committing(output) as staging:  # rows as the SQL ordered them
        if script_args["--output_format"] == "text":
            (staging / "part-00000.txt").write_bytes(text_lines(table, script_args["--sql_path"]))
        else:
            with (staging / "part-00000.csv").open("wb") as handle:
                sagemaker.write_csv(table, handle)
        if "--manifest" in script_args:
            (staging / "manifest.json").write_text(script_args["--manifest"])
    return table.num_rows


def text_lines(table: pa.Table, sql: str) -> bytes:
    """A `text` output's bytes: the one string column's values, each ended by a line feed (Spark's text writer)."""
    import pyarrow as pa

    if table.num_columns != 1 or not pa.types.is_string(table.schema[0].type) or table.column(0).null_count:
        raise SqlJobError(f"{sql}: a text output needs one text column without nulls, the SQL returns "
                          f"{table.schema}")
    return "".join(line + "\n" for line in table.column(0).to_pylist()).encode()


def in_stable_order(table: pa.Table) -> pa.Table:
    """The rows sorted by every column: a parallel engine returns them in any order, and a re-run must write the
    same file (the Glue script sorts the same way)."""
    import pyarrow as pa

    keys = [(f.name, "ascending") for f in table.schema if not pa.types.is_nested(f.type)]
    return table.sort_by(keys) if keys else table
