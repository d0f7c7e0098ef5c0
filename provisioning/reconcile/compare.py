"""What differs between a Polar object and its desired form (``catalog.desired``).

One comparison for provisioning (what a run updates) and for drift (what was changed at Polar, as
a webhook's JSON says): the two never disagree on what counts as a change. Objects are plain
dicts with Polar's field names: a webhook's ``data``, or an SDK object through ``product_view`` /
``benefit_view``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provisioning.catalog.desired import price_key
from provisioning.reconcile.context import as_plain

# The product fields the catalog sets, in the order differences are reported.
PRODUCT_FIELDS = ("name", "description", "is_archived", "recurring_interval", "prices")
BENEFIT_FIELDS = ("description", "properties")


@dataclass(frozen=True)
class Difference:
    field: str  # one of PRODUCT_FIELDS or BENEFIT_FIELDS
    catalog: Any  # the desired value, as in a request body
    polar: Any  # Polar's value


def product_view(product: Any) -> dict[str, Any]:
    """The compared fields of a polar-sdk Product as a plain dict."""
    return {
        "name": product.name,
        "description": product.description,
        "is_archived": product.is_archived,
        "recurring_interval": as_plain(product.recurring_interval),
        "recurring_interval_count": product.recurring_interval_count,
        "prices": [as_plain(p) for p in product.prices],
    }


def benefit_view(benefit: Any) -> dict[str, Any]:
    """The compared fields of a polar-sdk Benefit as a plain dict."""
    return {"description": benefit.description, "properties": as_plain(benefit.properties) or {}}


def active_prices(product: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for p in product.get("prices") or [] if isinstance(p, dict) and not p.get("is_archived")]


def interval(obj: Mapping[str, Any]) -> tuple[str | None, int]:
    """(interval, count) of a product or a product body; (None, 1) for a one-time product."""
    value = obj.get("recurring_interval")
    if not value:
        return (None, 1)
    return (str(value), int(obj.get("recurring_interval_count") or 1))


def _without_meter(price: Mapping[str, Any]) -> dict[str, Any]:
    return {**price, "meter_id": None} if price.get("amount_type") == "metered_unit" else dict(price)


def same_prices(actual: list[dict[str, Any]], desired: list[dict[str, Any]], *, meters: bool = True) -> bool:
    """The same prices, in any order. ``meters=False`` leaves out which meter a metered price
    counts (a webhook does not say which catalog meter a Polar meter is)."""
    if not meters:
        actual, desired = [_without_meter(p) for p in actual], [_without_meter(d) for d in desired]
    return Counter(price_key(p) for p in actual) == Counter(price_key(d) for d in desired)


def product_differences(
    product: Mapping[str, Any], body: Mapping[str, Any], *, meters: bool = True
) -> list[Difference]:
    """How ``product`` differs from ``body`` (``catalog.desired.product_body``). A billing
    interval cannot change at Polar: provisioning replaces such a product rather than updating it."""
    out: list[Difference] = []
    if product.get("name") != body["name"]:
        out.append(Difference("name", body["name"], product.get("name")))
    if (product.get("description") or None) != (body.get("description") or None):
        out.append(Difference("description", body.get("description"), product.get("description")))
    if product.get("is_archived"):
        out.append(Difference("is_archived", False, True))
    if interval(product) != interval(body):
        out.append(Difference("recurring_interval", interval(body), interval(product)))
    prices = active_prices(product)
    if not same_prices(prices, body["prices"], meters=meters):
        out.append(Difference("prices", body["prices"], prices))
    return out


def benefit_differences(benefit: Mapping[str, Any], body: Mapping[str, Any]) -> list[Difference]:
    """How ``benefit`` differs from ``body`` (``catalog.desired.benefit_body``): its description,
    and the properties the catalog sets (Polar may add others)."""
    out: list[Difference] = []
    if benefit.get("description") != body["description"]:
        out.append(Difference("description", body["description"], benefit.get("description")))
    props = benefit.get("properties") or {}
    if any(props.get(k) != v for k, v in body["properties"].items()):
        out.append(Difference("properties", body["properties"], props))
    return out
