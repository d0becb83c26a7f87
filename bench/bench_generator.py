"""Benchmark the synthetic retailer: history generation and one live day at a given scale.

    make bench ARGS="--customers 100000"        (or: PYTHONPATH=plugins .venv/bin/python bench/bench_generator.py ...)

Writes into .data/bench/generator-<N>/ (its own storage root and SQLite source DB) and prints one JSON line
with wall seconds per phase, rows written and peak memory; the same JSON is saved beside the data.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time

from benchkit import retailer_root, use_retailer  # first: it puts plugins/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--history-days", type=int, default=540)
    parser.add_argument("--event-history-days", type=int, default=35)
    parser.add_argument("--live-days", type=int, default=1)
    args = parser.parse_args()

    root = retailer_root(args.customers)
    shutil.rmtree(root, ignore_errors=True)
    use_retailer(root)
    from crosschannel.core.config import get_config
    from crosschannel.sim import generator

    settings = get_config().generator.model_copy(update={
        "customers": args.customers, "history_days": args.history_days,
        "event_history_days": args.event_history_days})
    started = time.perf_counter()
    history = generator.generate(settings, force=True)
    history_seconds = time.perf_counter() - started
    started = time.perf_counter()
    live = generator.advance(args.live_days)
    live_seconds = time.perf_counter() - started
    result = {
        "customers": args.customers,
        "history_days": args.history_days,
        "event_history_days": args.event_history_days,
        "history_seconds": round(history_seconds, 1),
        "live_day_seconds": round(live_seconds / args.live_days, 1),
        "rows": history["rows"],
        "history_events": history["events"],
        "live_day_events": live[-1]["events"],
        "source_db_mb": round((root / "source.db").stat().st_size / 2**20),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    (root / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
