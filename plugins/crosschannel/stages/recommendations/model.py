"""The local recipes, fitted on the trusted purchases (and identified views) before a cutoff, scored with numpy.

User personalization (the stand-in for aws-user-personalization-v2) blends two distributions over the catalogue:

- category-aware popularity: P(category | customer) x P(item | category). The customer's category mix is their
  recency-weighted purchases (and, weighed less, identified views and cart adds) per category, shrunk towards the
  shop-wide mix by `prior_strength` pseudo-purchases, so a customer with one purchase is not all one category and
  a customer with none gets the shop-wide mix; P(item | category) is the item's recency-weighted share of its
  category's purchases (add-one smoothed, so a new item is not zero);
- item-item co-occurrence: the cosine similarity of items over the customers who bought both, summed over the
  items the customer bought (what people who bought what you bought also bought).

Similar items (the stand-in for aws-similar-items) blends an item's co-occurrence row with the popularity of its
own category. Popularity count (the baseline, aws-popularity-count) is every customer's same list: the items by
number of purchases. Scores are shares of one (over the whole catalogue, before filters), like Personalize's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from scipy import sparse

    from crosschannel.stages.recommendations.data import Trusted

USER_PERSONALIZATION = "aws-user-personalization-v2"
SIMILAR_ITEMS = "aws-similar-items"
POPULARITY = "aws-popularity-count"
RECIPES = (USER_PERSONALIZATION, SIMILAR_ITEMS, POPULARITY)
DAY_SECONDS = 86_400.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """The recipes' hyperparameters (measured on generated retailers: see `evaluate`)."""

    prior_strength: float = 2.0  # pseudo-purchases of the shop-wide category mix in each customer's mix
    half_life_days: float = 365.0  # a purchase this old weighs half a new one
    co_weight: float = 0.3  # share of the item-item co-occurrence in the personalized blend
    event_weight: float = 0.1  # an identified view (a cart add: twice that) against a purchase's 1
    similar_category_weight: float = 0.3  # share of the item's own category's popularity in similar items


DEFAULTS = Settings()


@dataclasses.dataclass(frozen=True)
class Model:
    """A fitted model over a catalogue (`items`, sorted product ids) and the customers with history (`users`)."""

    items: np.ndarray
    category: np.ndarray  # per item: index into `categories`
    categories: tuple[str, ...]
    users: np.ndarray  # sorted customer ids with any interaction before the cutoff
    mix: np.ndarray  # users x categories: each customer's smoothed category mix (rows sum to 1)
    shop_mix: np.ndarray  # the shop-wide category mix
    within: np.ndarray  # per item: its share of its category's purchases
    bought: sparse.csr_matrix  # users x items: 1 where the customer bought the item before the cutoff
    similarity: np.ndarray  # items x items: cosine over co-buyers, zero diagonal (float32)
    popularity: np.ndarray  # per item: share of all purchases before the cutoff
    settings: Settings

    def rows(self, customer_ids: np.ndarray) -> np.ndarray:
        """Each customer's row in `users`, -1 for a customer with no history (or an unknown id)."""
        return index_of(self.users, customer_ids)

    def user_scores(self, rows: np.ndarray) -> np.ndarray:
        """Personalized scores (len(rows) x items, each row summing to 1) for rows of `users` (-1: no history)."""
        known = rows >= 0
        mix = np.tile(self.shop_mix, (rows.size, 1))
        mix[known] = self.mix[rows[known]]
        by_category = mix[:, self.category] * self.within[None, :]
        by_category /= by_category.sum(axis=1, keepdims=True)
        if self.settings.co_weight <= 0:
            return by_category
        co = np.zeros_like(by_category)
        co[known] = self.bought[rows[known]] @ self.similarity
        total = co.sum(axis=1, keepdims=True)
        co = np.divide(co, total, out=np.zeros_like(co), where=total > 0)
        weight = np.where(total > 0, self.settings.co_weight, 0.0)
        return (1.0 - weight) * by_category + weight * co

    def popularity_scores(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.popularity, (n, self.items.size))

    def similar_scores(self, item_rows: np.ndarray) -> np.ndarray:
        """Similar-items scores for rows of `items` (-1: an item outside the catalogue gets popularity)."""
        known = item_rows >= 0
        at = np.maximum(item_rows, 0)
        co = self.similarity[at].astype("float64")
        total = co.sum(axis=1, keepdims=True)
        co = np.divide(co, total, out=np.zeros_like(co), where=total > 0)
        same = (self.category[None, :] == self.category[at][:, None]) * self.within[None, :]
        same[np.arange(at.size), at] = 0.0
        same /= np.maximum(same.sum(axis=1, keepdims=True), 1e-12)
        weight = np.where(total > 0, self.settings.similar_category_weight, 1.0)
        scores = (1.0 - weight) * co + weight * same
        answered = known & (scores.sum(axis=1) > 0)  # an item alone in its category and never co-bought: popular
        return np.where(answered[:, None], scores, self.popularity[None, :])


def index_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each id's position in `sorted_ids`, -1 where it is not there."""
    if not sorted_ids.size:
        return np.full(ids.shape, -1)
    at = np.searchsorted(sorted_ids, ids).clip(0, sorted_ids.size - 1)
    return np.where(sorted_ids[at] == ids, at, -1)


def catalogue(trusted: Trusted, created_before: dt.datetime | None = None) -> pd.DataFrame:
    """The recommendable products: active ones (launched before `created_before`), by product id."""
    products = trusted.products
    keep = products["active"].astype(bool)
    if created_before is not None:
        keep &= products["created_at"] < created_before
    return products[keep].sort_values("product_id").reset_index(drop=True)


def _weights(ts: pd.Series, cutoff: dt.datetime, half_life_days: float) -> np.ndarray:
    age = (np.datetime64(cutoff, "us") - ts.to_numpy(dtype="datetime64[us]")) / np.timedelta64(1, "s")
    return np.power(0.5, np.maximum(age, 0.0) / DAY_SECONDS / half_life_days)


def fit(trusted: Trusted, items: pd.DataFrame, cutoff: dt.datetime, settings: Settings = DEFAULTS) -> Model:
    """Fit every recipe on the interactions before `cutoff`, over the catalogue `items` (catalogue())."""
    from scipy import sparse

    product_ids = items["product_id"].to_numpy(dtype="int64")
    categories = tuple(sorted(items["category"].astype(str).unique()))
    category = np.searchsorted(np.array(categories, dtype=object), items["category"].astype(str).to_numpy())
    purchases = trusted.purchases[trusted.purchases["ts"] < cutoff]
    purchases = purchases[np.isin(purchases["product_id"].to_numpy(), product_ids)]
    events = trusted.events[(trusted.events["ts"] < cutoff) & trusted.events["product_id"].isin(product_ids)]
    users = np.union1d(purchases["customer_id"].to_numpy(dtype="int64"), events["customer_id"].to_numpy(dtype="int64"))
    n_users, n_items, n_categories = users.size, product_ids.size, len(categories)

    def matrix(frame: pd.DataFrame, values: np.ndarray) -> sparse.csr_matrix:
        rows = np.searchsorted(users, frame["customer_id"].to_numpy(dtype="int64"))
        cols = np.searchsorted(product_ids, frame["product_id"].to_numpy(dtype="int64"))
        return sparse.csr_matrix((values, (rows, cols)), shape=(n_users, n_items))

    recency = matrix(purchases, _weights(purchases["ts"], cutoff, settings.half_life_days))
    viewed = matrix(events, events["weight"].to_numpy(dtype="float64")
                    * _weights(events["ts"], cutoff, settings.half_life_days))
    one_hot = np.zeros((n_items, n_categories))
    one_hot[np.arange(n_items), category] = 1.0
    per_category = np.asarray((recency + settings.event_weight * viewed) @ one_hot)
    item_weight = np.asarray(recency.sum(axis=0)).ravel()
    shop_mix = (item_weight @ one_hot + 1.0) / (item_weight.sum() + n_categories)
    mix = (per_category + settings.prior_strength * shop_mix) / (
        per_category.sum(axis=1, keepdims=True) + settings.prior_strength)
    category_weight = (item_weight + 1.0) @ one_hot
    within = (item_weight + 1.0) / category_weight[category]

    bought = matrix(purchases, np.ones(len(purchases)))
    bought.data[:] = 1.0  # duplicates were summed: bought at all
    counts = np.asarray(bought.sum(axis=0)).ravel()
    co = (bought.T @ bought).toarray()
    norm = np.sqrt(np.maximum(np.diag(co), 1.0))
    similarity = (co / norm[:, None] / norm[None, :]).astype("float32")
    np.fill_diagonal(similarity, 0.0)
    lines = np.bincount(np.searchsorted(product_ids, purchases["product_id"].to_numpy(dtype="int64")),
                        minlength=n_items).astype("float64")
    popularity = (lines + 1e-9 * counts) / max(lines.sum(), 1.0)  # more buyers break ties of equal counts
    return Model(items=product_ids, category=category, categories=categories, users=users, mix=mix,
                 shop_mix=shop_mix, within=within, bought=bought.tocsr(), similarity=similarity,
                 popularity=popularity, settings=settings)


def top(scores: np.ndarray, blocked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best unblocked items per row, best first (ties: the lower product id): their column indices and
    scores; a row with fewer than k unblocked items is padded with -1 and NaN."""
    masked = np.where(blocked, -np.inf, scores)
    k = min(k, masked.shape[1])
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(masked, order, axis=1)
    valid = np.isfinite(values)
    return np.where(valid, order, -1), np.where(valid, values, np.nan)
