"""Model metrics on held-out rows (AUC, PR-AUC, log loss, top-decile lift and capture, calibration) and the RFM
baseline every challenger must beat."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


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


def evaluate(y: np.ndarray, p: np.ndarray) -> dict:
    import numpy as np

    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(len(p) / 10)))]
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


def rfm_score(frame: pd.DataFrame) -> np.ndarray:
    """Recency/frequency/monetary quintiles summed (higher = more recent, frequent, valuable): the baseline."""
    import numpy as np

    recency = frame["recency_days"].astype("float64").fillna(1e6)
    parts = [-recency, frame["frequency_365d"].astype("float64"), frame["monetary_365d"].astype("float64")]
    return np.sum([part.rank(pct=True).to_numpy() for part in parts], axis=0)


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame, label: str) -> np.ndarray:
    """The RFM score, oriented on the training rows (for churn, a low RFM score means likely to lapse)."""
    sign = 1.0 if auc(train[label].to_numpy(), rfm_score(train)) >= 0.5 else -1.0
    return sign * rfm_score(test)
