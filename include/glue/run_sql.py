"""The one generic Glue 5.x job script (Spark 3.5, Python 3.11): register inputs, run one SQL file, write.

Job arguments (Glue passes them as --name value):
    --sql_path      the rendered SQL file (s3://... ; the DAG renders include/sql/<file> and uploads it)
    --inputs        JSON: {"<view>": {"format": "csv" | "dms_csv" | "json_lines" | "parquet", "paths": [...],
                    "schema": "<DDL>"}} (see crosschannel.core.sqljobs, which writes them)
                    dms_csv: DMS CSV files with a header, read as text, plus _file_seq (the file's place
                    in `paths`) and _row_seq (increasing with the row's place in its file)
                    json_lines: gzip files of one JSON document per line, one row per non-blank line: `line`,
                    _file_seq and _row_seq as for dms_csv (the SQL parses the lines)
                    csv: headerless CSV files (a batch transform's output) with the columns of `schema`
                    no paths: an empty view of `schema` (e.g. the identity map before the first day)
    --inputs_path   instead of --inputs: a file holding that JSON (a long list of files: Glue refuses arguments
                    over 260 KB in all)
    --output_path   the partition folder to commit: written as a new version folder inside it, then its
                    _SUCCESS marker is pointed at that version in one PUT (crosschannel.core.storage)
    --output_format optional: parquet (the default; rows sorted by every column), csv (SageMaker CSV: no
                    header, a null as an empty field, rows in the SQL's ORDER BY) or text (the SQL's one text
                    column as lines, in its ORDER BY: a file the SQL formats itself)
    --manifest      optional: a JSON document written as manifest.json into the version folder with the data
                    (a SageMaker channel's feature names), committed with it

A gate job instead (crosschannel.core.gates.plan_job):
    --gates_path    the gate job's spec (JSON: the suites, their inputs and references; see gx_checks.py)
    --output_path   the folder to commit one result JSON per suite to, as above
    with GX Core from --additional-python-modules and include/glue/gx_checks.py from --extra-py-files.

The Glue-only imports (awsglue) happen in `glue_session()` alone, so the same `run()` is tested under
local pyspark.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid


def read_input(spark, spec: dict):
    from pyspark.sql import functions as F

    paths = spec["paths"]
    if not paths:
        return spark.createDataFrame([], spec["schema"])
    if spec["format"] == "parquet":
        return spark.read.parquet(*paths)
    if spec["format"] == "csv":  # SageMaker CSV: no header, an empty field is a null, Python's nan and inf spelt
        # as Python writes them, and a value that does not fit its column fails the job (as on DuckDB)
        return (spark.read.schema(spec["schema"]).option("header", "false").option("mode", "FAILFAST")
                .option("nanValue", "nan").option("positiveInf", "inf").option("negativeInf", "-inf").csv(paths))
    order = F.create_map(*[x for i, p in enumerate(paths) for x in (F.lit(p), F.lit(i))])
    if spec["format"] == "json_lines":  # a gzip file is one partition: the ids increase along its lines
        blank = F.regexp_replace("line", r"\s", "") == ""  # only ASCII whitespace, as Python's bytes.strip()
        return (spark.read.text(paths).withColumnRenamed("value", "line")
                .withColumn("_file_seq", order[F.input_file_name()].cast("bigint"))
                .withColumn("_row_seq", F.monotonically_increasing_id()).where(~blank))
    if spec["format"] != "dms_csv":
        raise ValueError(f"input format {spec['format']!r}: expected csv, dms_csv, json_lines or parquet")
    # DMS writes RFC 4180: a quote inside a value is doubled, a value may hold the delimiter or a line break
    frame = (spark.read.option("header", "true").option("inferSchema", "false").option("multiLine", "true")
             .option("quote", '"').option("escape", '"').csv(paths))
    return (frame.withColumn("_file_seq", order[F.input_file_name()].cast("bigint"))
            .withColumn("_row_seq", F.monotonically_increasing_id()))


def _read_text(spark, url: str) -> str:
    return "\n".join(row.value for row in spark.read.text(url).collect())


def run(spark, sql_path: str, inputs: dict | None, output_path: str, output_format: str = "parquet",
        manifest: str | None = None, inputs_path: str | None = None) -> int:
    """Register the inputs (`inputs`, or the JSON file at `inputs_path`), run the SQL, write the result to
    output_path whole; returns the row count."""
    if output_format not in ("parquet", "csv", "text"):
        raise ValueError(f"--output_format {output_format!r}: expected parquet, csv or text")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the SQL's timestamps are UTC (DuckDB's is set alike)
    if inputs is None:
        inputs = json.loads(_read_text(spark, inputs_path))
    for view, spec in inputs.items():
        read_input(spark, spec).createOrReplaceTempView(view)
    sql = _read_text(spark, sql_path)
    result = spark.sql(sql)
    if output_format == "parquet":
        # every column as the sort key: a re-run writes the same file (crosschannel.core.sqljobs.in_stable_order)
        result = result.orderBy(*[f.name for f in result.schema.fields
                                  if f.dataType.typeName() not in ("array", "map", "struct")])
    # the version folder holds the data alone (the partition's own marker commits it): Hadoop's empty _SUCCESS in
    # it would be one more object for a reader of the whole prefix, such as a SageMaker transform
    spark.sparkContext._jsc.hadoopConfiguration().set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    result = result.cache()
    rows = result.count()
    version = _new_version()
    folder = output_path.rstrip("/") + "/" + version
    writer = result.coalesce(1).write.mode("errorifexists")  # one partition, in the sorted order
    if output_format == "csv":
        writer.option("header", "false").csv(folder)
    elif output_format == "text":
        writer.text(folder)
    else:
        writer.parquet(folder)
    if manifest is not None:
        _write_text(spark, folder + "/manifest.json", manifest)
    _point(spark, output_path.rstrip("/"), version)
    return rows


def _new_version() -> str:
    """A version folder's name, as crosschannel.core.storage.committing names them: `_v<seconds>-<random>`."""
    return f"_v{int(time.time())}-{uuid.uuid4().hex[:12]}"


RETIRE_SECONDS = 24 * 3600  # crosschannel.core.storage.LEFTOVER_SECONDS


def _point(spark, final: str, version: str) -> None:
    """Point the partition's marker at the written version (one object written whole) and retire the version it
    pointed at before; versions retired over a day ago are deleted. The same commit as crosschannel.core.storage's
    (a test runs both on one partition), through Hadoop's FileSystem."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path
    marker = path(final + "/_SUCCESS")
    fs = marker.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    pointer = {}
    if fs.exists(marker):
        stream = fs.open(marker)
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        stream.close()
        pointer = json.loads(text) if text.strip() else {}
    now = int(time.time())
    retired = {name: at for name, at in pointer.get("retired", {}).items() if now - at < RETIRE_SECONDS}
    if pointer.get("version") and pointer["version"] != version:
        retired[pointer["version"]] = now
    _write_text(spark, final + "/_SUCCESS", json.dumps({"version": version, "retired": retired}))
    for name in set(pointer.get("retired", {})) - set(retired):
        fs.delete(path(final + "/" + name), True)


def _write_text(spark, url: str, text: str) -> None:
    """One small file written whole (an S3 PUT; on local disk written beside and renamed over)."""
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(url)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.getScheme() == "file":  # local runs (tests)
        local = url.removeprefix("file://")
        folder, name = os.path.split(local)
        os.makedirs(folder, exist_ok=True)
        with open(f"{folder}/.{name}.tmp", "w") as handle:
            handle.write(text)
        os.replace(f"{folder}/.{name}.tmp", local)
    else:
        out = fs.create(target, True)
        out.write(bytearray(text, "utf-8"))
        out.close()


def run_gates(spark, gates_path: str, output_path: str) -> int:
    """A gate job: GX Core on Spark runs the spec's suites on their inputs (gx_checks, from --extra-py-files), one
    result JSON per suite committed to output_path as a SQL job's output is; returns the suites run."""
    import gx_checks

    spec = json.loads(_read_text(spark, gates_path))
    results = gx_checks.run_job(spec, lambda source: read_input(spark, source), gx_checks.Spark)
    version = _new_version()
    for result in results:
        _write_text(spark, f"{output_path.rstrip('/')}/{version}/{result['suite']}.json", json.dumps(result))
    _point(spark, output_path.rstrip("/"), version)
    return len(results)


def parse_args(argv: list[str]) -> dict:
    """The job's arguments: a SQL job's, or a gate job's (--gates_path, --output_path)."""
    gate = "--gates_path" in argv
    names = ("gates_path", "output_path") if gate else ("sql_path", "output_path")
    optional = () if gate else ("inputs", "inputs_path", "output_format", "manifest")
    found = {}
    for i, token in enumerate(argv):
        if token.startswith("--") and token[2:] in names + optional and i + 1 < len(argv):
            found[token[2:]] = argv[i + 1]
    inputs = gate or {"inputs", "inputs_path"} & set(found)
    missing = [n for n in names if n not in found] + ([] if inputs else ["inputs"])
    if missing:
        raise SystemExit(f"run_sql.py: missing job argument(s): {', '.join('--' + m for m in missing)}")
    if not gate:
        found["inputs"] = json.loads(found["inputs"]) if "inputs" in found else None
    return found


def glue_session():
    from awsglue.context import GlueContext
    from pyspark.context import SparkContext

    return GlueContext(SparkContext.getOrCreate()).spark_session


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    if "gates_path" in args:
        count = run_gates(glue_session(), **args)
        print(f"run_sql.py: wrote the results of {count} suites to {args['output_path']}")
    else:
        count = run(glue_session(), **args)
        print(f"run_sql.py: wrote {count} rows to {args['output_path']}")
