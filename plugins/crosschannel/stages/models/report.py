"""The model report: one self-contained HTML page per trained version."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from crosschannel.stages.models.metrics import auc

if TYPE_CHECKING:
    import numpy as np


def render_report(card: dict, y: np.ndarray, scores: dict[str, np.ndarray]) -> str:
    """One self-contained HTML page: metrics, decision, ROC, precision-recall, gain, calibration, importance."""
    import base64
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    (roc, pr, gain), (calibration, importance, blank) = axes
    positives = max(y.sum(), 1)
    points = np.unique(np.linspace(0, len(y) - 1, 400).astype(int))  # curves drawn through 400 cut-offs
    for name, p in scores.items():
        order = np.argsort(-p, kind="stable")
        hits = y[order]
        tpr = np.cumsum(hits) / positives
        fpr = np.cumsum(1 - hits) / max(len(y) - y.sum(), 1)
        roc.plot(np.concatenate([[0], fpr[points]]), np.concatenate([[0], tpr[points]]),
                 label=f"{name} (AUC {auc(y, p):.3f})")
        precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
        pr.plot(tpr[points], precision[points], label=name)
        gain.plot((points + 1) / len(y), tpr[points], label=name)
    roc.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    gain.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    for axis, title, xlabel, ylabel in ((roc, "ROC", "false positive rate", "true positive rate"),
                                        (pr, "Precision-recall", "recall", "precision"),
                                        (gain, "Cumulative gain (lift)", "share of customers targeted",
                                         "share of positives captured")):
        axis.set(title=title, xlabel=xlabel, ylabel=ylabel)
        axis.legend(loc="lower right" if axis is not pr else "upper right", fontsize=8)
    bins = card["metrics"]["calibration"]
    calibration.plot([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins], "o-")
    calibration.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    calibration.set(title="Calibration", xlabel="mean predicted probability", ylabel="observed rate")
    top = list(card["feature_importance_gain"].items())[:15][::-1]
    importance.barh([k for k, _ in top], [v for _, v in top])
    importance.set(title="Feature importance (gain)")
    blank.axis("off")
    fig.tight_layout()
    buffer = __import__("io").BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()

    def row(name: str, metrics: dict | None) -> str:
        if metrics is None:
            return ""
        keys = ("auc", "pr_auc", "log_loss", "top_decile_lift", "top_decile_capture", "calibration_error")
        cells = "".join(f"<td>{metrics[k]:.4f}</td>" if metrics[k] == metrics[k] else "<td>n/a</td>" for k in keys)
        return f"<tr><th>{html.escape(name)}</th>{cells}</tr>"

    champion_metrics = card["champion"]["metrics"] if card["champion"] else None
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{card['model']} {card['version']}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:right}}</style></head><body>
<h1>Model {html.escape(card['model'])} {card['version']} ({html.escape(card['label'])})</h1>
<p>Trained on partition {card['training_partition']}; as-of days {html.escape(json.dumps(card['split_days']))}.</p>
<p><b>{html.escape(card['decision'])}</b> (margin {card['promotion_margin']}).</p>
<table><tr><th></th><th>AUC</th><th>PR-AUC</th><th>log loss</th><th>top-decile lift</th>
<th>top-decile capture</th><th>calibration error</th></tr>
{row('challenger', card['metrics'])}{row('RFM baseline', card['baseline'])}{row('champion', champion_metrics)}
</table><img alt="evaluation plots" src="data:image/png;base64,{image}"></body></html>
"""
