"""The trusted gate job on both of its engines, on one spec: GX Core on pandas in the worker (the local target's
`crosschannel.core.gates.run_local`) and GX Core on Spark (the Glue script's `run_gates`, on a local Spark).

    PYTHONPATH=plugins .venv/bin/python bench/bench_gate_engines.py .data/bench_scale_100000 2026-11-02

Gates the published trusted partitions of the day under the storage root given (as `make bench-scale` leaves
them) and prints one JSON line: the rows gated, the seconds of each engine (Spark's include starting its JVM), and
whether both found the same per-suite statistics (expectations evaluated, succeeded, failed).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]


def main() -> None:
    root, day = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
    os.environ["CROSSCHANNEL__STORAGE__ROOT"] = str(Path(root).resolve())
    sys.path.insert(0, str(BUNDLE / "plugins"))
    from pyspark.sql import SparkSession

    from crosschannel.core import dms, gates, paths, storage
    from crosschannel.stages.trusted import publish

    names = [*dms.mapped_tables(), "identity_map", "events"]
    suites = {f"trusted_{n}": (paths.trusted(n, day), paths.trusted(n, day)) for n in names}
    (args,) = publish.plan_gate(day, suites, "engines", "bench")
    out = tempfile.mkdtemp()
    started = time.perf_counter()
    gates.run_local({**args, "--output_path": f"file://{out}/pandas"})
    pandas_seconds = time.perf_counter() - started

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spec = importlib.util.spec_from_file_location("run_sql", BUNDLE / "include/glue/run_sql.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    started = time.perf_counter()
    script.run_gates(spark, args["--gates_path"], f"file://{out}/spark")
    spark_seconds = time.perf_counter() - started

    found = {engine: gates.job_results(storage.location(f"file://{out}/{engine}")) for engine in ("pandas", "spark")}
    statistics = {engine: sorted((r["suite"], json.dumps(r["validation"]["statistics"], sort_keys=True))
                                 for r in results) for engine, results in found.items()}
    print(json.dumps({"day": day.isoformat(), "rows": sum(r["rows"] for r in found["pandas"]),
                      "pandas_seconds": round(pandas_seconds, 1), "spark_local2_seconds": round(spark_seconds, 1),
                      "same_statistics": statistics["pandas"] == statistics["spark"]}))


if __name__ == "__main__":
    main()
