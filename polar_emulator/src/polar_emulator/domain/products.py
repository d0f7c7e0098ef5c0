"""Products and their prices.

Storage:

- ``store.collections["products"]``: each product in its full API shape (``Product`` plus
  polar-sdk 1.0.2's ``is_deletable``): ``prices`` are the active prices, ``benefits`` the full
  benefit objects. :func:`refresh_products` re-renders them after a benefit or meter changes.
- ``store.collections["product_prices"]``: every price ever made, archived ones included, in
  API shape (subscriptions keep pointing at archived prices). Look them up with :func:`get_price`.

A deleted product is removed from the collection.
"""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

from polar_emulator.domain.benefits import get_benefit
from polar_emulator.domain.meters import get_meter, meter_summary
from polar_emulator.domain.store import Store, collection


def get_product(store: Store, product_id: str | UUID) -> dict[str, Any] | None:
    """The stored product (API shape), or None."""
    return collection(store, "products").get(str(product_id))


def get_price(store: Store, price_id: str | UUID) -> dict[str, Any]:
    """A stored price (API shape), archived ones included; products only refer to stored prices."""
    return collection(store, "product_prices")[str(price_id)]


def serialize_product(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """A copy of a product's API shape, safe to hand out or put in a webhook payload."""
    return copy.deepcopy(product)


def _render_price(store: Store, price: dict[str, Any]) -> dict[str, Any]:
    if price["amount_type"] == "metered_unit":
        meter = get_meter(store, price["meter_id"])
        if meter is not None:
            price["meter"] = meter_summary(meter)
    return price


def render_product(store: Store, product: dict[str, Any], price_ids: list[str] | None = None) -> None:
    """Rebuild ``prices`` and ``benefits`` in place from the current prices, benefits and meters."""
    if price_ids is None:
        price_ids = [p["id"] for p in product["prices"]]
    product["prices"] = [_render_price(store, get_price(store, pid)) for pid in price_ids]
    benefits = [get_benefit(store, b["id"]) for b in product["benefits"]]
    product["benefits"] = [copy.deepcopy(b) for b in benefits if b is not None]


def refresh_products(store: Store, organization_id: str) -> None:
    """Re-render an organization's products after one of its benefits or meters changed."""
    for product in collection(store, "products").values():
        if product["organization_id"] == organization_id:
            render_product(store, product)
