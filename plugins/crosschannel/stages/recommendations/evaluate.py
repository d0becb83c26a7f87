"""Offline quality of the recipes on a temporal holdout, beside popularity and (on generated data) the oracle.

The holdout of partition P: every recipe is fitted on the purchases up to the end of day D = P - `horizon_days`
and recommends `k` items to every customer who signed up by D and bought in the window D+1..P (the trusted orders
of P hold the whole window). The customer's relevant items are the distinct products bought in the window, all
of them (one outside the catalogue of D, a product launched later, counts as a miss for every ranking).

- recall@k: the recommended items bought / the items bought, per customer, averaged;
- precision@k: the recommended items bought / k, averaged;
- NDCG@k: binary gain discounted by log2(rank + 1), over the ideal ranking's, averaged;
- coverage: the distinct items recommended to anyone / the catalogue (active products launched by D).

Every ranking gets the same filter (the items the customer bought in the `exclude_days` days up to D); the stock
filter is off (no inventory of day D is kept: the trusted inventory is today's). The baseline is popularity
count; the oracle, where the generator's latent state is under the storage root, ranks the catalogue by each
customer's true probability of buying the item: their true affinity for its category over the number of
catalogue items of that category (the generator picks a category by affinity, then an item uniformly;
`sim/orders.py`). Similar items is measured on the same holdout: the items similar to each customer's latest
purchase before D, against popularity (it has no oracle of its own).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import TYPE_CHECKING

import numpy as np

from crosschannel.core import paths, storage
from crosschannel.stages.recommendations import data, filters
from crosschannel.stages.recommendations.batch import rank_items, rank_users
from crosschannel.stages.recommendations.model import (
    DEFAULTS,
    POPULARITY,
    SIMILAR_ITEMS,
    USER_PERSONALIZATION,
    Settings,
    catalogue,
    fit,
    index_of,
    top,
)

if TYPE_CHECKING:
    import pandas as pd

K = 10
HORIZON_DAYS = 30


def metrics(recommended: np.ndarray, relevant: pd.DataFrame, catalogue_size: int, k: int = K) -> dict:
    """recall, precision and NDCG at k and coverage of rankings (customers x k product ids, -1 padded; row r is
    customer r) against `relevant` (distinct rows `row`, `product_id`: what customer `row` bought)."""
    import pandas as pd

    n = recommended.shape[0]
    ranked = recommended[:, :k]
    rank = np.broadcast_to(np.arange(ranked.shape[1]), ranked.shape)
    rows = np.broadcast_to(np.arange(n)[:, None], ranked.shape)
    listed = pd.DataFrame({"row": rows.ravel(), "rank": rank.ravel(), "product_id": ranked.ravel()})
    hits = listed[listed["product_id"] >= 0].merge(relevant, on=["row", "product_id"])
    n_hits = np.bincount(hits["row"], minlength=n)
    n_relevant = np.bincount(relevant["row"], minlength=n)
    if (n_relevant == 0).any():
        raise ValueError("every ranked customer needs at least one relevant item")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = np.bincount(hits["row"], weights=discount[hits["rank"].to_numpy()], minlength=n)
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    shown = np.unique(ranked[ranked >= 0])
    return {f"recall_at_{k}": float(np.mean(n_hits / n_relevant)), f"precision_at_{k}": float(np.mean(n_hits / k)),
            f"ndcg_at_{k}": float(np.mean(dcg / ideal)), "coverage": shown.size / catalogue_size if catalogue_size
            else 0.0}


def generator_latents() -> dict | None:
    """The generator's latent category affinities (customers x categories, row i: customer i + 1) and product
    categories (index i: product i + 1), where the generator keeps its state; None for a retailer it did not make.
    Read only to measure against the truth, never to recommend."""
    path = paths.generator("state.npz")
    if not path.exists():
        return None
    with np.load(io.BytesIO(path.read_bytes())) as state:
        cumulative = state["c_affinity"]
        return {"affinity": np.diff(cumulative, axis=1, prepend=0.0), "category": state["p_category"].astype("int64")}


def oracle_rank(latents: dict, customer_ids: np.ndarray, items: np.ndarray, blocked_of, k: int) -> np.ndarray | None:
    """The oracle's k items per customer: the catalogue by true affinity of its category / items of that category
    in the catalogue (ties: the lower product id); None when the latents do not cover these ids."""
    affinity, category = latents["affinity"], latents["category"]
    if customer_ids.max(initial=0) > affinity.shape[0] or items.max(initial=0) > category.size:
        return None
    item_category = category[items - 1]
    per_item = 1.0 / np.bincount(item_category, minlength=affinity.shape[1])[item_category]
    ranked = np.empty((customer_ids.size, min(k, items.size)), dtype="int64")
    step = max(1, 4_000_000 // max(items.size, 1))
    for start in range(0, customer_ids.size, step):
        chunk = customer_ids[start:start + step]
        scores = affinity[chunk - 1][:, item_category] * per_item[None, :]
        columns, _ = top(scores, blocked_of(chunk), k)
        ranked[start:start + step] = np.where(columns >= 0, items[np.maximum(columns, 0)], -1)
    return ranked


def _with_prefix(prefix: str, figures: dict) -> dict:
    return {f"{prefix}_{name}": round(value, 6) for name, value in figures.items()}


def evaluate(day: dt.date, *, trusted: data.Trusted | None = None, horizon_days: int = HORIZON_DAYS, k: int = K,
             exclude_days: int = filters.EXCLUDE_BOUGHT_DAYS, settings: Settings = DEFAULTS,
             latents: dict | str | None = "generator") -> dict:
    """The holdout of partition `day` for every recipe: {recipe: {recall_at_10, precision_at_10, ndcg_at_10,
    coverage, popularity_*, oracle_* (None without latents), lift_over_popularity, users, ...}}. `latents`:
    "generator" reads them where the generator keeps them, a dict gives them, None measures no oracle."""
    started = time.monotonic()
    trusted = trusted or data.read(day)
    train_day = day - dt.timedelta(days=horizon_days)
    cutoff, end = data.end_of(train_day), data.end_of(day)
    items = catalogue(trusted, created_before=cutoff)
    model = fit(trusted, items, cutoff, settings)
    masks = filters.build(trusted, model.items, cutoff, exclude_days=exclude_days, check_stock=False)

    purchases = trusted.purchases
    window = purchases[(purchases["ts"] >= cutoff) & (purchases["ts"] < end)]
    signed_up = trusted.customers.loc[trusted.customers["signup_date"] <= train_day, "customer_id"]
    customers = np.intersect1d(window["customer_id"].to_numpy(dtype="int64"), signed_up.to_numpy(dtype="int64"))
    if not customers.size:
        raise ValueError(f"holdout of {day}: no customer who signed up by {train_day} bought in the window")
    bought = window[window["customer_id"].isin(customers)][["customer_id", "product_id"]].drop_duplicates()
    relevant = bought.assign(row=np.searchsorted(customers, bought["customer_id"].to_numpy()))[["row", "product_id"]]

    personal = metrics(rank_users(model, masks, customers, k)[0], relevant, items.shape[0], k)
    popular = metrics(rank_users(model, masks, customers, k, POPULARITY)[0], relevant, items.shape[0], k)
    latents = generator_latents() if latents == "generator" else latents
    oracle_ranked = oracle_rank(latents, customers, model.items, masks.blocked, k) if latents else None
    oracle = metrics(oracle_ranked, relevant, items.shape[0], k) if oracle_ranked is not None else None
    common = {"users": int(customers.size), "relevant_items": len(relevant), "catalogue": int(items.shape[0]),
              "train_until": train_day.isoformat(), "test_from": (train_day + dt.timedelta(days=1)).isoformat(),
              "test_until": day.isoformat(), "k": k, "exclude_bought_days": exclude_days, "stock_filter": False,
              "train_purchases": int((purchases["ts"] < cutoff).sum())}
    recall = f"recall_at_{k}"
    result = {USER_PERSONALIZATION: {
        **{name: round(value, 6) for name, value in personal.items()}, **_with_prefix("popularity", popular),
        **(_with_prefix("oracle", oracle) if oracle else {f"oracle_{name}": None for name in personal}),
        "lift_over_popularity": round(personal[recall] / popular[recall], 3) if popular[recall] else None,
        **common}}
    result[SIMILAR_ITEMS] = _similar_items(model, masks, trusted, customers, cutoff, relevant, items.shape[0], k,
                                           common)
    for figures in result.values():
        figures["seconds"] = round(time.monotonic() - started, 2)
    return result


def _similar_items(model, masks, trusted, customers, cutoff, relevant, catalogue_size, k, common) -> dict:
    """Similar items to each customer's latest purchase (in the catalogue) before the cutoff, against popularity
    for the same customers; customers without one are left out."""
    history = trusted.purchases[(trusted.purchases["ts"] < cutoff) & trusted.purchases["customer_id"].isin(customers)
                                & trusted.purchases["product_id"].isin(model.items)]
    latest = history.sort_values(["customer_id", "ts", "product_id"]).groupby("customer_id").tail(1)
    anchored = latest["customer_id"].to_numpy(dtype="int64")  # sorted, as groupby leaves them
    rows = index_of(customers, anchored)
    ranked, _ = rank_items(model, masks, latest["product_id"].to_numpy(dtype="int64"), k,
                           exclude=masks.blocked(anchored))
    kept = relevant[relevant["row"].isin(rows)]
    kept = kept.assign(row=np.searchsorted(rows, kept["row"].to_numpy()))
    similar = metrics(ranked, kept, catalogue_size, k)
    baseline = metrics(rank_users(model, masks, anchored, k, POPULARITY)[0], kept, catalogue_size, k)
    recall = f"recall_at_{k}"
    return {**{name: round(value, 6) for name, value in similar.items()}, **_with_prefix("popularity", baseline),
            **{f"oracle_{name}": None for name in similar},
            "lift_over_popularity": round(similar[recall] / baseline[recall], 3) if baseline[recall] else None,
            **common, "users": int(anchored.size)}


def write(day: dt.date, result: dict) -> str:
    """Keep the evaluation in the day's reports: <root>/reports/dt=D/recommendations/evaluation.json; its URL."""
    path = paths.reports(day, "recommendations", "evaluation.json")
    storage.write_json(path, result)
    return storage.url_of(path)
