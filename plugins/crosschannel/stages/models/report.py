"""The model report: one self-contained HTML page per trained version, for the people who act on it: rows and
positive rate per split, the challenger next to both baselines, the champion and (on a generated retailer) the
oracle, the top-decile lift with a flag when a baseline beats the model there, and reason codes in plain words."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from crosschannel.stages.models.metrics import auc, ranking

if TYPE_CHECKING:
    import numpy as np

BASELINES = {"rfm": "RFM baseline", "bgnbd": "BG/NBD baseline"}
REASONS = {  # feature -> what a marketer reads in a reason code
    "recency_days": "days since the last purchase", "orders_lifetime": "orders since the data starts",
    "order_days_lifetime": "days with a purchase", "observed_days": "days the customer has been observed",
    "days_since_first_order": "days since the first purchase", "interval_mean_days": "usual days between purchases",
    "interval_std_days": "how irregular the purchases are", "interval_max_days": "longest gap between purchases",
    "interval_last_days": "gap before the last purchase",
    "recency_ratio": "time since the last purchase against the customer's usual gap",
    "order_rate": "purchases per day observed", "expected_orders_since_last": "purchases missed at the usual pace",
    "frequency_trend_90d": "share of the year's orders in the last 90 days",
    "spend_trend_90d": "share of the year's spend in the last 90 days", "tenure_days": "days since signing up",
    "store_share_365d": "share of orders in store", "web_share_365d": "share of orders on the web",
    "app_share_365d": "share of orders in the app", "discount_share_365d": "share of spend discounted",
    "returns_90d": "returns in the last 90 days", "refunds_90d": "refunds in the last 90 days",
    "top_category_share_365d": "loyalty to one category", "product_views_30d": "product views in the last 30 days",
    "searches_30d": "searches in the last 30 days", "wishlist_adds_30d": "wishlist adds in the last 30 days",
    "cart_adds_30d": "cart adds in the last 30 days", "cart_abandons_30d": "abandoned carts in the last 30 days",
    "days_since_visit": "days since the last visit", "bgnbd_p_alive": "chance the customer is still active (BG/NBD)",
    "bgnbd_expected_purchases": "purchases expected in the window (BG/NBD)",
    "bgnbd_p_no_purchase": "chance of no purchase in the window (BG/NBD)",
}


def reason_label(feature: str) -> str:
    """Plain words for a feature: the table above, else spelled out from its name (frequency_60d: orders in
    the last 60 days)."""
    if feature in REASONS:
        return REASONS[feature]
    found = re.fullmatch(r"(frequency|monetary)_(\d+)d", feature)
    if found:
        return f"{'orders' if found[1] == 'frequency' else 'spend'} in the last {found[2]} days"
    return feature.replace("_", " ")


def reason_labels(features) -> dict[str, str]:
    return {f: reason_label(f) for f in features}


def render_report(card: dict, y: np.ndarray, scores: dict[str, np.ndarray], tiebreak: np.ndarray | None = None) -> str:
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
        order = ranking(p, tiebreak)
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
    importance.barh([reason_label(k) for k, _ in top], [v for _, v in top])
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
        cells = "".join("<td>n/a</td>" if metrics[k] is None or metrics[k] != metrics[k]
                        else f"<td>{metrics[k]:.4f}</td>" for k in keys)
        return f"<tr><th>{html.escape(name)}</th>{cells}</tr>"

    champion_metrics = card["champion"]["metrics"] if card["champion"] else None
    lift = card["metrics"]["top_decile_lift"]
    beaten = [BASELINES[k] for k, m in card["baselines"].items() if (m["top_decile_lift"] or 0) > (lift or 0)]
    flag = (f"<p><b>Flag:</b> the {' and the '.join(beaten)} beat the model at the top decile (lift {lift:.2f}): an "
            "audience cut from the top deciles would be better served by it.</p>" if beaten else "")
    split = card.get("split") or {}
    layout = (f"Split layout: <b>{html.escape(split['layout'])}</b> ({html.escape(split['reason'])})."
              if split else "")
    oracle = card.get("oracle_auc")
    oracle_text = (f"{oracle:.4f} (the model reaches {card['metrics']['auc'] / oracle:.1%} of it)" if oracle
                   else "n/a (known only where the generator wrote the truth for the test day)")
    splits = "".join(f"<tr><th>{k}</th><td>{', '.join(card['split_days'][k])}</td><td>{v['rows']}</td>"
                     f"<td>{v['positive_rate']:.3f}</td></tr>" for k, v in card["splits"].items())
    reasons = "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
                      for k, v in card["reason_labels"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{card['model']} {card['version']}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:right}}</style></head><body>
<h1>Model {html.escape(card['model'])} {card['version']} ({html.escape(card['label'])})</h1>
<p>Trained on partition {card['training_partition']}; as-of days {html.escape(json.dumps(card['split_days']))}.
{layout}</p>
<p><b>{html.escape(card['decision'])}</b> (margin {card['promotion_margin']}). Scoring with:
<b>{html.escape(str(card['serving_champion']))}</b>.</p>
<table><tr><th>split</th><th>as-of days</th><th>rows</th><th>positive rate</th></tr>{splits}</table>
<p>Oracle AUC (the generator's true probabilities on the test rows): {oracle_text}.</p>
<table><tr><th></th><th>AUC</th><th>PR-AUC</th><th>log loss</th><th>top-decile lift</th>
<th>top-decile capture</th><th>calibration error</th></tr>
{row('challenger', card['metrics'])}{''.join(row(BASELINES[k], m) for k, m in card['baselines'].items())}
{row('champion ' + card['champion']['version'] if card['champion'] else 'champion', champion_metrics)}
</table>{flag}<img alt="evaluation plots" src="data:image/png;base64,{image}">
<h2>Reason codes</h2><table>{reasons}</table></body></html>
"""
