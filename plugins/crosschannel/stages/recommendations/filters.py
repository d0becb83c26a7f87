"""What the Personalize filters remove, as boolean masks over (customers x catalogue items).

- bought recently: the items the customer bought in the `days` days up to the cutoff (Personalize:
  `EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")` limited to recent interactions);
- out of stock: items with no stock at the customer's home store AND none online. The inventory table holds store
  stock only (online orders ship from the stores' stock), so online stock is the stock of `online_stores` (all
  stores by default: ship from any store); an item missing from the inventory has no stock anywhere. A customer
  without a home store (or an unknown id) is served online only.

Products that are not active never reach the catalogue (model.catalogue), so no filter needs them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from crosschannel.stages.recommendations.model import index_of

if TYPE_CHECKING:
    import pandas as pd
    from scipy import sparse

    from crosschannel.stages.recommendations.data import Trusted

EXCLUDE_BOUGHT_DAYS = 30
LOCATIONS, ONLINE, STORE_PREFIX = "LOCATIONS", "ONLINE", "S"  # the stock filter's placeholder and its values


def locations(home_store_id) -> list[str]:
    """A customer's LOCATIONS: their home store (when they have one) and online."""
    home = [] if home_store_id is None or home_store_id != home_store_id or int(home_store_id) < 0 else \
        [f"{STORE_PREFIX}{int(home_store_id)}"]
    return [*home, ONLINE]


def _store_id(location: str) -> int:
    digits = location.removeprefix(STORE_PREFIX)
    return int(digits) if location.startswith(STORE_PREFIX) and digits.isdigit() else -1


@dataclasses.dataclass(frozen=True)
class Filters:
    """The masks' inputs for one catalogue: who bought what recently, and where each item is in stock."""

    items: np.ndarray  # the catalogue's product ids, sorted (the model's columns)
    customers: np.ndarray  # sorted customer ids that bought something recently
    recent: sparse.csr_matrix  # customers x items: bought in the window
    stores: np.ndarray  # sorted store ids
    homed: np.ndarray  # sorted ids of the customers whose home store is in the inventory
    home: np.ndarray  # their home store's row of `stores`
    in_stock: np.ndarray  # (stores + 1) x items: available to a customer of that home store; the last row online

    def blocked(self, customer_ids: np.ndarray, stock_rows: np.ndarray | None = None) -> np.ndarray:
        """customers x items: True where a filter removes the item for the customer; `stock_rows`: each customer's
        row of `in_stock` (see stock_rows), by default the home store's (online for a customer without one)."""
        rows = index_of(self.customers, customer_ids)
        recent = np.zeros((customer_ids.size, self.items.size), dtype=bool)
        hit = rows >= 0
        if hit.any():
            recent[hit] = self.recent[rows[hit]].toarray() > 0
        return recent | ~self.in_stock[self.home_rows(customer_ids) if stock_rows is None else stock_rows]

    def stock_rows(self, filter_values: list[dict | None]) -> np.ndarray:
        """Per input line, the `in_stock` row its filterValues' LOCATIONS choose: the listed store's (which includes
        online stock) or, with ONLINE alone, a store not in the inventory or no LOCATIONS, the online row."""
        online = self.in_stock.shape[0] - 1
        rows = np.full(len(filter_values), online, dtype="int64")
        for line, values in enumerate(filter_values):
            for location in json.loads(f"[{(values or {}).get(LOCATIONS, '')}]"):
                at = index_of(self.stores, np.array([_store_id(location)]))[0]
                if at >= 0:
                    rows[line] = at
        return rows

    def home_rows(self, customer_ids: np.ndarray) -> np.ndarray:
        """Each customer's row of `in_stock`: their home store's, online for one without a home store."""
        at = index_of(self.homed, customer_ids)
        return np.where(at >= 0, self.home[np.maximum(at, 0)] if self.home.size else 0, self.in_stock.shape[0] - 1)

    def in_stock_for(self, customer_ids: np.ndarray | None, product_ids: np.ndarray) -> np.ndarray:
        """Per (customer, product) pair: in stock at the customer's home store or online (customer_ids None: online
        only); a product outside the catalogue is not."""
        columns = index_of(self.items, product_ids)
        rows = (np.full(product_ids.size, self.in_stock.shape[0] - 1) if customer_ids is None
                else self.home_rows(customer_ids))
        return (columns >= 0) & self.in_stock[rows, np.maximum(columns, 0)]

    def unavailable(self) -> np.ndarray:
        """Per item: out of stock online (what filters similar items, which have no customer)."""
        return ~self.in_stock[-1]


def build(trusted: Trusted, items: np.ndarray, cutoff: dt.datetime, *, exclude_days: int = EXCLUDE_BOUGHT_DAYS,
          online_stores: Iterable[int] | None = None, check_stock: bool = True) -> Filters:
    """The filters as of `cutoff` (the end of the run's day) for the catalogue `items` (sorted product ids).
    `check_stock=False` keeps every item in stock (an offline evaluation has no past day's inventory)."""
    from scipy import sparse

    since = cutoff - dt.timedelta(days=exclude_days)
    purchases = trusted.purchases
    window = purchases[(purchases["ts"] >= since) & (purchases["ts"] < cutoff)
                       & purchases["product_id"].isin(items)]
    customers = np.unique(window["customer_id"].to_numpy(dtype="int64"))
    recent = sparse.csr_matrix(
        (np.ones(len(window)), (np.searchsorted(customers, window["customer_id"].to_numpy(dtype="int64")),
                                np.searchsorted(items, window["product_id"].to_numpy(dtype="int64")))),
        shape=(customers.size, items.size))
    stores, in_stock = _stock(trusted.inventory, items, online_stores, check_stock)
    homes = trusted.customers[trusted.customers["home_store_id"].isin(stores)].sort_values("customer_id")
    return Filters(items=items, customers=customers, recent=recent, stores=stores,
                   homed=homes["customer_id"].to_numpy(dtype="int64"),
                   home=np.searchsorted(stores, homes["home_store_id"].to_numpy(dtype="int64")), in_stock=in_stock)


def _stock(inventory: pd.DataFrame, items: np.ndarray, online_stores, check_stock: bool):
    stores = np.unique(inventory["store_id"].to_numpy(dtype="int64"))
    if not check_stock:
        return stores, np.ones((stores.size + 1, items.size), dtype=bool)
    known = inventory[inventory["product_id"].isin(items)]
    on_hand = np.zeros((stores.size, items.size))
    np.add.at(on_hand, (np.searchsorted(stores, known["store_id"].to_numpy(dtype="int64")),
                        np.searchsorted(items, known["product_id"].to_numpy(dtype="int64"))),
              known["on_hand"].to_numpy(dtype="float64"))
    online_rows = np.ones(stores.size, dtype=bool) if online_stores is None else np.isin(stores, list(online_stores))
    online = np.maximum(on_hand[online_rows], 0).sum(axis=0) > 0
    return stores, np.vstack([(on_hand > 0) | online[None, :], online[None, :]])
