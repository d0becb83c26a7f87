"""Benchmark the trusted stage's CDC merge on a generated retailer, against DuckDB's floor.

    PYTHONPATH=plugins .venv/bin/python bench/bench_trusted.py --customers 100000

Needs the retailer from `bench/bench_generator.py --customers N` (.data/bench/generator-N/). Runs the local
DMS full load and the landing check (timed), then per table: the merge (include/sql/trusted/cdc_merge.sql
on DuckDB, reading the landed CSV and writing the trusted Parquet partition) and the floor (DuckDB
reading the same CSV bytes as text and writing them to Parquet with no transform). Prints one JSON line;
the ratio merge/floor says what the merge itself costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BUNDLE / "plugins"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    root = BUNDLE / ".data" / "bench" / f"generator-{args.customers}"
    if not (root / "source.db").exists():
        raise SystemExit(f"no retailer at {root}: run bench/bench_generator.py --customers {args.customers} first")
    for zone in ("landing", "system", "trusted"):
        shutil.rmtree(root / zone, ignore_errors=True)
    os.environ.update({
        "CROSSCHANNEL__TARGET": "local",
        "CROSSCHANNEL__STORAGE__ROOT": str(root),
        "CROSSCHANNEL__SOURCE__URL": f"sqlite:///{root / 'source.db'}",
        "CROSSCHANNEL__SEGMENT__LOGS_URI": str(root / "segment-logs"),
    })
    import duckdb

    from crosschannel import dms, trusted

    day = dt.date(2026, 11, 1)
    started = time.perf_counter()
    dms.LocalReplicationTask().start("start-replication", day)
    extract_seconds = time.perf_counter() - started
    started = time.perf_counter()
    manifest = dms.check_landing(day, "start-replication")
    check_seconds = time.perf_counter() - started

    tables = {}
    for name in dms.mapped_tables():
        files = trusted.landing_files(name, day)
        started = time.perf_counter()
        rows = trusted.merge_and_write(name, day)
        merge = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
            started = time.perf_counter()
            paths = [str(f.path) for f in files]
            con.execute(
                f"COPY (SELECT * FROM read_csv({paths}, header = true, all_varchar = true)) "
                f"TO '{tmp}/floor.parquet' (FORMAT parquet)"
            )
            floor = time.perf_counter() - started
        tables[name] = {"rows": rows, "csv_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
                        "merge_seconds": round(merge, 2), "floor_seconds": round(floor, 2),
                        "ratio": round(merge / floor, 1) if floor else None}
    result = {
        "customers": args.customers,
        "extract_seconds": round(extract_seconds, 1),
        "landing_check_seconds": round(check_seconds, 1),
        "landed_rows": sum(t["rows"] for t in manifest["tables"].values()),
        "merge_seconds": round(sum(t["merge_seconds"] for t in tables.values()), 1),
        "floor_seconds": round(sum(t["floor_seconds"] for t in tables.values()), 1),
        "tables": tables,
    }
    (root / "trusted-result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
