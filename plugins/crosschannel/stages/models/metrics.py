"""Model metrics on held-out rows (AUC, PR-AUC, log loss, top-decile lift and capture, calibration), the stable
tie-break wherever customers are ranked (top deciles here, score deciles and audiences in scoring), and the
cleaning that keeps a model card valid JSON."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import rankdata

    positives = y == 1
    n1, n0 = positives.sum(), (~positives).sum()
    if not n1 or not n0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    import numpy as np

    order = np.argsort(-p, kind="stable")
    hits = y[order] == 1
    precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
    return float(precision[hits].sum() / max(hits.sum(), 1))


def stable_hash(ids, model: str) -> np.ndarray:
    """A number per customer id, fixed for a model and the same on every run and machine: equal scores are ranked
    by it, never by id or row order (which would give, say, a win-back audience of the highest ids only). The
    first 52 bits of md5('<model>:<id>'), exact as a double: include/sql/scoring/scores.sql ranks ties by that md5
    on either engine, so the evaluation's top decile is the customers scoring puts in decile 10."""
    import hashlib

    import numpy as np

    return np.array([int(hashlib.md5(f"{model}:{i}".encode()).hexdigest()[:13], 16) for i in ids], dtype="float64")


def ranking(p: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Row indices from the highest score down; equal scores in `tiebreak` order (the stable hash)."""
    import numpy as np

    if tiebreak is None:
        return np.argsort(-p, kind="stable")
    return np.lexsort((-tiebreak, -p))


def evaluate(y: np.ndarray, p: np.ndarray, tiebreak: np.ndarray | None = None) -> dict:
    import numpy as np

    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    top = ranking(p, tiebreak)[: max(1, int(np.ceil(len(p) / 10)))]
    base_rate = float(y.mean())
    edges = np.linspace(0, 1, 11)
    bins = []
    for low, high in itertools.pairwise(edges):
        inside = (p >= low) & ((p < high) if high < 1 else (p <= high))
        if inside.any():
            bins.append({"low": float(low), "high": float(high), "rows": int(inside.sum()),
                         "mean_predicted": float(p[inside].mean()), "observed_rate": float(y[inside].mean())})
    return {
        "rows": len(y), "positive_rate": base_rate, "auc": auc(y, p), "pr_auc": average_precision(y, p),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "top_decile_lift": float(y[top].mean() / base_rate) if base_rate else float("nan"),
        "top_decile_capture": float(y[top].sum() / y.sum()) if y.sum() else float("nan"),
        "calibration_error": float(sum(b["rows"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in bins)
                                   / len(y)),
        "calibration": bins,
    }


def finite(value):
    """`value` with every NaN or infinity as None, so a card is valid JSON (json.dumps writes NaN otherwise)."""
    import math

    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
