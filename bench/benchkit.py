"""What the benchmarks share: the bundle on sys.path, a retailer's folder under .data/bench/, the local
target pointed at it, and a timer. Each bench script imports it first (its folder is on sys.path)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BUNDLE / "plugins"))


def retailer_root(customers: int) -> Path:
    return BUNDLE / ".data" / "bench" / f"generator-{customers}"


def use_retailer(root: Path, *, needs: str | None = None, run_first: str = "", clean: tuple[str, ...] = (),
                 **overrides: str) -> None:
    """Point the local target at `root` (after checking the earlier benchmark left `needs` there and removing
    the zones this one rewrites); `overrides` are further CROSSCHANNEL__* values."""
    if needs and not (root / needs).exists():
        raise SystemExit(f"no {needs} at {root}: run {run_first} first")
    for zone in clean:
        shutil.rmtree(root / zone, ignore_errors=True)
    os.environ.update({
        "CROSSCHANNEL__TARGET": "local",
        "CROSSCHANNEL__STORAGE__ROOT": str(root),
        "CROSSCHANNEL__SOURCE__URL": f"sqlite:///{root / 'source.db'}",
        "CROSSCHANNEL__SEGMENT__LOGS_URI": str(root / "segment-logs"),
        **overrides,
    })


class Timer:
    """`timer(name, fn, *args)` runs fn and keeps its wall time in seconds under `name`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, *args):
        started = time.perf_counter()
        value = fn(*args)
        self.seconds[name] = round(time.perf_counter() - started, 2)
        return value
