"""Load and validate a plan catalog (TOML). Every error names the plan (or benefit/meter) and field."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from provisioning.catalog.model import Benefit, Catalog, Meter, Plan, Price
from provisioning.errors import ConnectPolarError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INTERVALS = ("day", "week", "month", "year")
BENEFIT_TYPES = ("feature_flag", "custom", "meter_credit")
PRICE_TYPES = ("fixed", "metered_unit")
AGGREGATIONS = ("count", "sum", "max", "min", "avg", "unique")


class CatalogError(ConnectPolarError, ValueError):
    """The catalog file is unusable; the message says where and what is wrong."""


# The catalog last parsed from each file, with the text it was parsed from: a run (and each sweep)
# loads the running catalog, parsed again only when its file's text changed. Catalog is frozen.
_parsed: dict[Path, tuple[str, Catalog]] = {}


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog file ({exc.strerror})") from exc
    cached = _parsed.get(path)
    if cached is not None and cached[0] == text:
        return cached[1]
    catalog = parse_catalog(text, source=str(path))
    _parsed[path] = (text, catalog)
    return catalog


def parse_catalog(text: str, *, source: str = "<catalog>") -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    return dataclasses.replace(build_catalog(data, source=source), text=text)


def build_catalog(data: dict[str, Any], *, source: str = "<catalog>") -> Catalog:
    unknown = set(data) - {"plans", "benefits", "meters"}
    if unknown:
        raise CatalogError(f"{source}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    meters = tuple(_meter(m, i) for i, m in enumerate(_tables(data, "meters")))
    _unique("meter", [m.id for m in meters])
    meter_ids = {m.id for m in meters}
    benefits = tuple(_benefit(b, i, meter_ids) for i, b in enumerate(_tables(data, "benefits")))
    _unique("benefit", [b.id for b in benefits])
    benefit_ids = {b.id for b in benefits}
    raw_plans = _tables(data, "plans")
    if not raw_plans:
        raise CatalogError(f"{source}: the catalog defines no plans (add at least one [[plans]] table)")
    plans = tuple(_plan(p, i, meter_ids, benefit_ids) for i, p in enumerate(raw_plans))
    _unique("plan", [p.id for p in plans])
    _distinct_env_names(plans)
    catalog = Catalog(plans=plans, benefits=benefits, meters=meters, source=source)
    return Catalog(
        plans=plans, benefits=benefits, meters=meters, revision=catalog_revision(catalog), source=source
    )


def catalog_revision(catalog: Catalog) -> str:
    """A short sha256 of the canonical content: stable across formatting, changes with meaning."""
    canonical = json.dumps(canonical_content(catalog), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def canonical_content(catalog: Catalog) -> dict[str, Any]:
    def plain(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return str(obj.normalize())
        if isinstance(obj, tuple | list):
            return [plain(x) for x in obj]
        if hasattr(obj, "__dataclass_fields__"):
            return {
                k: plain(getattr(obj, k))
                for k in obj.__dataclass_fields__
                if k not in ("revision", "source", "text")
            }
        return obj

    return {
        "plans": plain(catalog.plans),
        "benefits": plain(catalog.benefits),
        "meters": plain(catalog.meters),
    }


# -- helpers -------------------------------------------------------------------------------------


def _tables(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CatalogError(f"'{key}' must be an array of tables ([[{key}]])")
    return value


def _distinct_env_names(plans: tuple[Plan, ...]) -> None:
    """Two plan ids that differ only by '-' and '_' would share one deploy variable."""
    seen: dict[str, str] = {}
    for plan in plans:
        other = seen.setdefault(plan.env_name, plan.id)
        if other != plan.id:
            raise CatalogError(
                f"plan '{plan.id}': id gives the same deploy variable {plan.env_name} as plan "
                f"'{other}'; rename one of them"
            )


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise CatalogError(f"{kind} '{ident}': id is defined more than once")
        seen.add(ident)


class _Fields:
    """Reads fields of one table, naming the owner in every error."""

    def __init__(self, kind: str, table: dict[str, Any], index: int, allowed: set[str]) -> None:
        raw_id = table.get("id")
        self.label = f"{kind} '{raw_id}'" if isinstance(raw_id, str) and raw_id else f"{kind} #{index + 1}"
        self.table = table
        extra = set(table) - allowed
        if extra:
            self.fail(", ".join(sorted(extra)), "is not a known field")

    def fail(self, field: str, problem: str) -> None:
        raise CatalogError(f"{self.label}: {field} {problem}")

    def ident(self) -> str:
        value = self.table.get("id")
        if value is None:
            self.fail("id", "is required")
        if not isinstance(value, str) or not ID_RE.match(value):
            self.fail("id", f"must be lowercase letters, digits, '-' or '_' (max 64), got {value!r}")
        assert isinstance(value, str)
        return value

    def text(self, name: str, *, required: bool = True, min_len: int = 1, max_len: int = 500) -> str | None:
        value = self.table.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(value, str) or not (min_len <= len(value.strip()) <= max_len):
            self.fail(name, f"must be a string of {min_len}-{max_len} characters, got {value!r}")
        return value.strip()

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.table.get(name)
        if value is None:
            if required:
                self.fail(name, f"is required (one of {', '.join(options)})")
            return None
        if value not in options:
            self.fail(name, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def integer(self, name: str, *, minimum: int = 0, required: bool = True, what: str = "") -> int | None:
        value = self.table.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
            self.fail(name, f"must be {kind}{what}, got {value!r}")
        return value


def _meter(table: dict[str, Any], index: int) -> Meter:
    f = _Fields("meter", table, index, {"id", "name", "event_name", "aggregation", "property"})
    ident = f.ident()
    name = f.text("name", min_len=3, max_len=100)
    event_name = f.text("event_name", max_len=1000)
    aggregation = f.choice("aggregation", AGGREGATIONS)
    prop = f.text("property", required=aggregation != "count", max_len=200)
    assert name and event_name and aggregation
    return Meter(id=ident, name=name, event_name=event_name, aggregation=aggregation, property=prop)


def _benefit(table: dict[str, Any], index: int, meter_ids: set[str]) -> Benefit:
    f = _Fields("benefit", table, index, {"id", "type", "description", "note", "meter", "units", "rollover"})
    ident = f.ident()
    btype = f.choice("type", BENEFIT_TYPES)
    description = f.text("description", min_len=3, max_len=42)
    assert btype and description
    if btype == "custom":
        return Benefit(id=ident, type=btype, description=description, note=f.text("note", required=False))
    if btype == "meter_credit":
        meter = f.text("meter")
        if meter not in meter_ids:
            f.fail("meter", f"refers to an unknown meter {meter!r}")
        units = f.integer("units", minimum=1)
        rollover = table.get("rollover", False)
        if not isinstance(rollover, bool):
            f.fail("rollover", f"must be true or false, got {rollover!r}")
        return Benefit(
            id=ident, type=btype, description=description, meter=meter, units=units, rollover=rollover
        )
    for name in ("note", "meter", "units", "rollover"):
        if name in table:
            f.fail(name, f"does not apply to a {btype} benefit")
    return Benefit(id=ident, type=btype, description=description)


def _price(table: Any, index: int, label: str, plan: _Fields, meter_ids: set[str], recurring: bool) -> Price:
    if not isinstance(table, dict):
        plan.fail(label, 'must be a table like { type = "fixed", amount = 0, currency = "usd" }')
    allowed = {"type", "amount", "currency", "meter", "unit_amount", "cap_amount"}
    extra = set(table) - allowed
    if extra:
        plan.fail(f"{label}.{sorted(extra)[0]}", "is not a known field")
    ptype = table.get("type", "fixed")
    if ptype not in PRICE_TYPES:
        plan.fail(f"{label}.type", f"must be one of {', '.join(PRICE_TYPES)}, got {ptype!r}")
    currency = table.get("currency", "usd")
    if not isinstance(currency, str) or not re.fullmatch(r"[a-z]{3}", currency):
        plan.fail(f"{label}.currency", f"must be a lowercase ISO 4217 code like 'usd', got {currency!r}")
    if ptype == "fixed":
        amount = table.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            plan.fail(f"{label}.amount", f"must be a non-negative integer (cents), got {amount!r}")
        return Price(type="fixed", currency=currency, amount=amount)
    if not recurring:
        plan.fail(f"{label}.type", "metered_unit prices need a recurring plan (set interval)")
    meter = table.get("meter")
    if meter not in meter_ids:
        plan.fail(f"{label}.meter", f"refers to an unknown meter {meter!r}")
    raw_unit = table.get("unit_amount")
    try:
        unit = (
            Decimal(str(raw_unit))
            if isinstance(raw_unit, str | int | float) and not isinstance(raw_unit, bool)
            else None
        )
    except InvalidOperation:
        unit = None
    if unit is None or unit < 0 or not unit.is_finite():
        plan.fail(
            f"{label}.unit_amount", f'must be a non-negative number of cents like "0.05", got {raw_unit!r}'
        )
    cap = table.get("cap_amount")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        plan.fail(f"{label}.cap_amount", f"must be a non-negative integer (cents), got {cap!r}")
    return Price(type="metered_unit", currency=currency, meter=meter, unit_amount=unit, cap_amount=cap)


def _plan(table: dict[str, Any], index: int, meter_ids: set[str], benefit_ids: set[str]) -> Plan:
    f = _Fields(
        "plan",
        table,
        index,
        {"id", "name", "description", "interval", "interval_count", "benefits", "price", "prices"},
    )
    ident = f.ident()
    name = f.text("name", min_len=3, max_len=64)
    description = f.text("description", required=False, max_len=1000)
    interval = table.get("interval")
    if interval in ("none", "one_time", ""):
        interval = None
    if interval is not None and interval not in INTERVALS:
        f.fail("interval", f'must be one of {", ".join(INTERVALS)} or "none", got {interval!r}')
    count = f.integer("interval_count", minimum=1, required=False) or 1
    if "price" in table and "prices" in table:
        f.fail("price", "and prices are both set; use one of them")
    if "price" in table:
        prices = [_price(table["price"], 0, "price", f, meter_ids, interval is not None)]
    elif "prices" in table:
        raw = table["prices"]
        if not isinstance(raw, list) or not raw:
            f.fail("prices", "must be a non-empty array of price tables")
        prices = [_price(p, i, f"prices[{i}]", f, meter_ids, interval is not None) for i, p in enumerate(raw)]
    else:
        f.fail("price", 'is required (e.g. price = { type = "fixed", amount = 0, currency = "usd" })')
    fixed = [p for p in prices if p.type == "fixed"]
    if len({p.currency for p in fixed}) != len(fixed):
        f.fail("prices", "has more than one fixed price in the same currency (Polar allows one)")
    benefits = table.get("benefits", [])
    if not isinstance(benefits, list) or not all(isinstance(b, str) for b in benefits):
        f.fail("benefits", f"must be an array of benefit ids, got {benefits!r}")
    for b in benefits:
        if b not in benefit_ids:
            f.fail("benefits", f"refers to an unknown benefit {b!r}")
    if len(set(benefits)) != len(benefits):
        f.fail("benefits", "lists a benefit twice")
    assert name
    return Plan(
        id=ident,
        name=name,
        description=description,
        interval=interval,
        interval_count=count,
        prices=tuple(prices),
        benefits=tuple(benefits),
    )
