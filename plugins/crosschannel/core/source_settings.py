"""The `sources` section of the configuration (crosschannel.core.config.Config.sources): what the retailer's data
holds besides orders and customers, and what needs each source (README: "Declared sources").

Its own module because config.py is at its size limit; it imports nothing of the bundle (config imports it).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SOURCE_MEANING = {"events": "web or app events from Segment", "products": "a product catalogue",
                  "stores": "physical stores", "contacts": "customers' email addresses or phone numbers"}


# What each destination and the recommendations need beyond orders and customers: Pinpoint's endpoints are email
# addresses and phone numbers; Personalize's items and a recommendation are products of a catalogue.
NEEDS = {"pinpoint": ("contacts",), "personalize": ("products",), "customer_profiles": (), "segment": (),
         "recommendations": ("products",)}


class Sources(_Section):
    # What the retailer's data holds (README: "Declared sources"). Whatever needs an absent source (a gate's
    # expectation, an audience, a feature, a destination) is skipped with the reason in its report or summary.
    events: bool = True
    products: bool = True
    stores: bool = True
    contacts: bool = True

    def missing(self, needs: Iterable[str], what: str) -> str | None:
        """Why `what`, which needs these sources, is skipped; None when every one is declared."""
        needs = list(needs)
        unknown = sorted(set(needs) - set(SOURCE_MEANING))
        if unknown:
            raise ValueError(f"{what}: needs unknown source(s) {', '.join(unknown)} "
                             f"(expected {', '.join(SOURCE_MEANING)})")
        absent = [name for name in needs if not getattr(self, name)]
        if not absent:
            return None
        return (f"{what} needs {' and '.join(SOURCE_MEANING[name] for name in absent)}, and the retailer has none "
                f"({', '.join(f'sources.{name}' for name in absent)}: false)")


# Features of customer_features.sql that mean nothing without a source: a model trains without them (the dataset
# manifest says why) when the retailer has not that source.
FEATURE_NEEDS = {"store_share_365d": ("stores",), "top_category_share_365d": ("products",),
                 **dict.fromkeys(("product_views_30d", "searches_30d", "wishlist_adds_30d", "cart_adds_30d",
                                  "cart_abandons_30d", "days_since_visit"), ("events",))}
