"""The retailer's catalogue: products (launched, repriced, retired), stores and per-store stock.

`CatalogueMixin` holds the Retailer methods that change the catalogue each day and turn it into source rows.
The opening catalogue is drawn in `Retailer.create`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crosschannel.sim.timeline import DAY_US, timestamps

CATEGORIES = ("apparel", "footwear", "accessories", "beauty", "home", "kitchen", "electronics", "sports",
              "toys", "grocery")
REGIONS = ("north", "south", "east", "west")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown", "Salem", "Madison", "Clinton",
          "Ashland", "Burlington", "Dover", "Franklin")


class CatalogueMixin:
    """Retailer methods for products, stores and stock (the arrays p_*, s_* and stock of `a`)."""

    a: dict[str, np.ndarray]

    def _catalogue_changes(self, rng, changes, lines, orders, d: int, day_us: int, n_stores: int) -> None:
        """Prices change, products launch and retire, stock moves with store sales and restocks."""
        a = self.a
        n_p = a["p_price"].size
        draw = rng.random(n_p)
        existing = a["p_active"] & (a["p_created"] < d)
        repriced = np.flatnonzero(existing & (draw < 0.003))
        retired = np.flatnonzero(existing & (draw >= 0.003) & (draw < 0.0035))
        a["p_price"][repriced] = np.round(a["p_price"][repriced] * rng.choice([0.8, 0.9, 1.1, 1.2], repriced.size), 2)
        a["p_active"][retired] = False
        changed = np.concatenate([repriced, retired])
        changes.update("products", pd.DataFrame({
            "product_id": changed + 1,
            "price": a["p_price"][changed],
            "active": a["p_active"][changed],
            "updated_at": timestamps(
                day_us + rng.integers(6 * 3600, 8 * 3600, changed.size).astype(np.int64) * 1_000_000),
        }))

        store_of = dict(zip(orders["order_id"], orders["store_id"], strict=True))
        sold = lines.assign(store_id=lines["order_id"].map(store_of)).dropna(subset=["store_id"])
        sold = sold[~np.isin(sold["product_id"].to_numpy() - 1, retired)]
        sold = sold.groupby(["store_id", "product_id"], as_index=False)["quantity"].sum()
        s_idx = sold["store_id"].to_numpy(dtype=np.int64) - 1
        p_idx = sold["product_id"].to_numpy(dtype=np.int64) - 1
        stock = a["stock"]
        stock[s_idx, p_idx] -= sold["quantity"].to_numpy()
        low = stock[s_idx, p_idx] < 10
        stock[s_idx[low], p_idx[low]] += 60
        changes.update("inventory", pd.DataFrame({
            "store_id": s_idx + 1,
            "product_id": p_idx + 1,
            "on_hand": stock[s_idx, p_idx],
            "updated_at": timestamps(day_us + 22 * 3600 * 1_000_000 + np.arange(s_idx.size, dtype=np.int64)),
        }))
        grid_s, grid_p = np.meshgrid(np.arange(n_stores), retired, indexing="ij")
        changes.deletes["inventory"] = pd.DataFrame({"store_id": grid_s.ravel() + 1, "product_id": grid_p.ravel() + 1})

        launched = self._launch(rng, int(rng.random() < 0.05), d, n_stores)
        changes.inserts["products"] = self.product_rows(launched, day_us + 5 * 3600 * 1_000_000)
        changes.inserts["inventory"] = self.inventory_rows(day_us + 5 * 3600 * 1_000_000, launched)

    def _launch(self, rng, n: int, d: int, n_stores: int) -> np.ndarray:
        a = self.a
        start = a["p_price"].size
        a["stock"] = np.concatenate([a["stock"], rng.integers(20, 120, (n_stores, n))], axis=1)
        category = rng.integers(0, len(CATEGORIES), n).astype(np.int16)
        a["p_category"] = np.concatenate([a["p_category"], category])
        a["p_price"] = np.concatenate([a["p_price"], np.round(rng.uniform(10, 120, n), 2) + 0.99])
        a["p_brand"] = np.concatenate([a["p_brand"], rng.integers(0, 6, n).astype(np.int16)])
        a["p_active"] = np.concatenate([a["p_active"], np.ones(n, dtype=bool)])
        a["p_created"] = np.concatenate([a["p_created"], np.full(n, d, dtype=np.int32)])
        return np.arange(start, start + n)

    def product_rows(self, idx: np.ndarray, ts_us) -> pd.DataFrame:
        a = self.a
        category = np.array(CATEGORIES)[a["p_category"][idx]]
        brand = pd.Series(category).str.title() + " Brand " + (a["p_brand"][idx] + 1).astype(str)
        return pd.DataFrame({
            "product_id": idx + 1,
            "sku": [f"SKU-{i + 1:07d}" for i in idx],
            "name": [f"{c.title()} item {i + 1}" for c, i in zip(category, idx, strict=True)],
            "category": category,
            "brand": brand.to_numpy(),
            "price": a["p_price"][idx],
            "active": a["p_active"][idx],
            "created_at": timestamps(a["p_created"][idx].astype(np.int64) * DAY_US + 3600 * 1_000_000),
            "updated_at": timestamps(np.broadcast_to(np.asarray(ts_us, dtype=np.int64), idx.shape)),
        })

    def store_rows(self, ts_us: int) -> pd.DataFrame:
        a = self.a
        n = a["s_region"].size
        ids = np.arange(1, n + 1)
        return pd.DataFrame({
            "store_id": ids,
            "name": [f"Store {i:03d}" for i in ids],
            "city": np.array(CITIES)[ids % len(CITIES)],
            "region": np.array(REGIONS)[a["s_region"]],
            "opened_date": pd.to_datetime(a["s_opened"], unit="D").date,
            "updated_at": timestamps(np.full(n, ts_us, dtype=np.int64)),
        })

    def inventory_rows(self, ts_us: int, products: np.ndarray | None = None) -> pd.DataFrame:
        a = self.a
        products = np.flatnonzero(a["p_active"]) if products is None else products
        grid_s, grid_p = np.meshgrid(np.arange(a["stock"].shape[0]), products, indexing="ij")
        return pd.DataFrame({
            "store_id": grid_s.ravel() + 1,
            "product_id": grid_p.ravel() + 1,
            "on_hand": a["stock"][grid_s.ravel(), grid_p.ravel()],
            "updated_at": timestamps(np.full(grid_s.size, ts_us, dtype=np.int64)),
        })
