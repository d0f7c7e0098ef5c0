"""Drift in plain words: each difference as the values it compares and one sentence for people.

``Pro (monthly) price changed at Polar to $35.00; the catalog says $29.00``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from provisioning.reconcile.compare import Difference

INTERVALS = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}
PROPERTY_NAMES = {"note": "note", "units": "units", "rollover": "rollover"}
NONE = "none"


def money(cents: Any, currency: str) -> str:
    """Cents (decimals allowed, as metered unit prices have) as money: ``$29.00``, ``9.50 EUR``."""
    try:
        amount = Decimal(str(cents)) / 100
    except InvalidOperation:
        return str(cents)
    text = f"{amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount:,.12f}".rstrip("0")
    return f"${text}" if currency.lower() == "usd" else f"{text} {currency.upper()}"


def price(body: Mapping[str, Any], meter_names: Mapping[str, str]) -> str:
    """One price, from a request body or Polar's price object."""
    currency = str(body.get("price_currency") or "usd")
    if body.get("amount_type") == "fixed":
        return money(body.get("price_amount") or 0, currency)
    if body.get("amount_type") == "metered_unit":
        meter = body.get("meter")
        meter = meter if isinstance(meter, dict) else {}
        name = meter.get("name") or meter_names.get(str(body.get("meter_id")), "")
        text = f"{money(body.get('unit_amount') or 0, currency)} per unit" + (f" of {name}" if name else "")
        if body.get("cap_amount") is not None:
            text += f", at most {money(body['cap_amount'], currency)}"
        return text
    return str(body.get("amount_type") or "a price")


def prices(bodies: list[dict[str, Any]], meter_names: Mapping[str, str]) -> str:
    if not bodies:
        return NONE
    return " + ".join(price(b, meter_names) for b in bodies)


def billing(value: tuple[str | None, int]) -> str:
    interval, count = value
    if interval is None:
        return "once"
    if count == 1:
        return INTERVALS.get(interval, f"every {interval}")
    return f"every {count} {interval}s"


def _quoted(value: Any) -> str:
    return f"“{value}”"


def properties(props: Mapping[str, Any], keys: list[str], meter_names: Mapping[str, str]) -> str:
    """The catalog's properties of a benefit; a meter by its name (``meter_names``: Polar meter id
    → the catalog's name), another meter as such."""
    parts = []
    for key in keys:
        value = props.get(key)
        if key == "meter_id":
            name = meter_names.get(str(value))
            parts.append(f"meter {_quoted(name)}" if name else "another meter")
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, int):
            shown = f"{value:,}"
        elif value is None:
            shown = NONE
        else:
            shown = _quoted(value)
        parts.append(f"{PROPERTY_NAMES.get(key, key.replace('_', ' '))} {shown}")
    return ", ".join(parts) or NONE


def values(difference: Difference, meter_names: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the catalog's value, Polar's value) in words, as stored on the drift row."""
    field, catalog, polar = difference.field, difference.catalog, difference.polar
    if field == "prices":
        return prices(catalog, meter_names), prices(polar, meter_names)
    if field == "recurring_interval":
        return billing(catalog), billing(polar)
    if field == "is_archived":
        return "offered", "archived"
    if field == "deleted":
        return "offered", "deleted"
    if field == "properties":
        # The credited meter is named only when it changed (it is an id, not a setting).
        keys = [k for k in catalog if k != "meter_id" or catalog.get(k) != polar.get(k)]
        return properties(catalog, keys, meter_names), properties(polar, keys, meter_names)
    return (None if catalog is None else str(catalog)), (None if polar is None else str(polar))


def message(label: str, difference: Difference, catalog_value: str | None, polar_value: str | None) -> str:
    """One sentence an owner or staff can act on."""
    field = difference.field
    if field == "name":
        return f"{label} was renamed at Polar to {_quoted(polar_value)}; the catalog says {_quoted(catalog_value)}"
    if field == "description":
        if not polar_value:
            return f"{label} lost its description at Polar; the catalog says {_quoted(catalog_value)}"
        if not catalog_value:
            return f"{label} was given a description at Polar, {_quoted(polar_value)}; the catalog has none"
        return (
            f"{label} description changed at Polar to {_quoted(polar_value)}; "
            f"the catalog says {_quoted(catalog_value)}"
        )
    if field == "is_archived":
        return f"{label} was archived at Polar; the catalog offers it"
    if field == "deleted":
        return f"{label} was deleted at Polar; the catalog offers it"
    if field == "recurring_interval":
        return f"{label} is billed {polar_value} at Polar; the catalog says {catalog_value}"
    if field == "prices":
        several = len(difference.catalog) > 1 or len(difference.polar) > 1
        noun = "prices" if several else "price"
        return f"{label} {noun} changed at Polar to {polar_value}; the catalog says {catalog_value}"
    if field == "properties":
        return f"{label} settings changed at Polar to {polar_value}; the catalog says {catalog_value}"
    return f"{label} {field.replace('_', ' ')} changed at Polar to {polar_value}; the catalog says {catalog_value}"
