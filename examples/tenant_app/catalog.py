"""The tenant API's plans and customer state, as the pages show them: prices formatted, benefits
described, plans and benefits named, and the usage events a metered price counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
INTERVALS = {"day": "day", "week": "week", "month": "month", "year": "year"}


def money(cents: Decimal | int, currency: str) -> str:
    """``2900`` usd → ``$29``, ``950`` → ``$9.50``, ``Decimal("0.05")`` → ``$0.0005``."""
    amount = Decimal(cents) / 100
    if amount == amount.to_integral_value():
        text = f"{amount:,.0f}"
    elif (amount * 100) == (amount * 100).to_integral_value():
        text = f"{amount:,.2f}"
    else:
        text = f"{amount.normalize():f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def per_interval(interval: str | None, count: int) -> str:
    if interval is None:
        return "once"
    unit = INTERVALS.get(interval, interval)
    return f"per {unit}" if count == 1 else f"every {count} {unit}s"


@dataclass(frozen=True)
class Metered:
    """A usage event a plan's metered price counts."""

    event_name: str
    meter_name: str


@dataclass(frozen=True)
class PlanView:
    id: str
    name: str
    description: str | None
    prices: list[str]
    benefits: list[tuple[str, str | None]]  # description, note
    metered: list[Metered] = field(default_factory=list)
    free: bool = False


@dataclass(frozen=True)
class Catalog:
    mode: str
    plans: list[PlanView]
    benefit_names: dict[str, str]  # catalog benefit id → description
    meter_names: dict[str, str]  # catalog meter id → name

    def plan_name(self, plan_id: str | None) -> str:
        if plan_id is None:
            return "A product outside ExampleNotes' plans"
        return next((p.name for p in self.plans if p.id == plan_id), plan_id)

    @property
    def metered(self) -> list[Metered]:
        """Each usage event any plan meters, once."""
        seen: dict[str, Metered] = {}
        for plan in self.plans:
            for metered in plan.metered:
                seen.setdefault(metered.event_name, metered)
        return list(seen.values())


def _price(price: dict[str, Any], interval: str | None, count: int) -> tuple[str, Metered | None]:
    currency = str(price.get("currency") or "usd")
    if price.get("type") == "metered_unit":
        meter = price.get("meter") or {}
        meter_name = str(meter.get("name") or meter.get("id") or "usage")
        try:
            unit = Decimal(str(price.get("unit_amount") or "0"))
        except InvalidOperation:
            unit = Decimal(0)
        line = f"{meter_name}: {money(unit, currency)} each"
        cap = price.get("cap_amount")
        if isinstance(cap, int):
            line += f", at most {money(cap, currency)} {per_interval(interval, count)}"
        event_name = meter.get("event_name")
        metered = Metered(str(event_name), meter_name) if event_name else None
        return line, metered
    amount = int(price.get("amount") or 0)
    if amount == 0:
        return "Free", None
    return f"{money(amount, currency)} {per_interval(interval, count)}", None


def catalog_of(answer: dict[str, Any]) -> Catalog:
    """``GET /plans``'s answer as the pages show it."""
    plans: list[PlanView] = []
    benefit_names: dict[str, str] = {}
    meter_names: dict[str, str] = {}
    for plan in answer.get("plans") or []:
        interval, count = plan.get("interval"), int(plan.get("interval_count") or 1)
        prices: list[str] = []
        metered: list[Metered] = []
        for price in plan.get("prices") or []:
            line, counted = _price(price, interval, count)
            prices.append(line)
            if counted:
                metered.append(counted)
            meter = price.get("meter") or {}
            if meter.get("id"):
                meter_names[str(meter["id"])] = str(meter.get("name") or meter["id"])
        benefits: list[tuple[str, str | None]] = []
        for benefit in plan.get("benefits") or []:
            description = str(benefit.get("description") or benefit.get("id"))
            benefit_names[str(benefit.get("id"))] = description
            benefits.append((description, benefit.get("note")))
            if benefit.get("type") == "meter_credit" and benefit.get("meter"):
                meter_names.setdefault(str(benefit["meter"]), str(benefit["meter"]))
        plans.append(
            PlanView(
                id=str(plan.get("id")),
                name=str(plan.get("name") or plan.get("id")),
                description=plan.get("description"),
                prices=prices,
                benefits=benefits,
                metered=metered,
                free=prices == ["Free"],
            )
        )
    return Catalog(str(answer.get("mode") or "test"), plans, benefit_names, meter_names)


@dataclass(frozen=True)
class Subscription:
    plan_id: str | None
    plan: str
    status: str
    renewal: str | None  # "Renews on 2 January 2027", "Ends on …"


@dataclass(frozen=True)
class MeterView:
    name: str
    balance: str
    consumed: str
    credited: str


@dataclass(frozen=True)
class State:
    subscriptions: list[Subscription]
    benefits: list[str]
    meters: list[MeterView]

    @property
    def plan_ids(self) -> set[str]:
        return {s.plan_id for s in self.subscriptions if s.plan_id}


def _day(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return f"{when.day} {when:%B %Y}"


def _number(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"
    return "–"


def state_of(answer: dict[str, Any], catalog: Catalog | None) -> State:
    """``GET /customers/{id}/state``'s answer, plans and benefits named from the catalog."""
    subscriptions = []
    for sub in answer.get("active_subscriptions") or []:
        plan_id = sub.get("plan")
        day = _day(sub.get("current_period_end"))
        renewal = None
        if day:
            renewal = f"Ends on {day}" if sub.get("cancel_at_period_end") else f"Renews on {day}"
        subscriptions.append(
            Subscription(
                plan_id=plan_id,
                plan=catalog.plan_name(plan_id) if catalog else (plan_id or "Another product"),
                status=str(sub.get("status") or "unknown"),
                renewal=renewal,
            )
        )
    names = catalog.benefit_names if catalog else {}
    benefits = [
        names.get(str(grant.get("benefit")), str(grant.get("benefit") or grant.get("benefit_id")))
        for grant in answer.get("granted_benefits") or []
    ]
    meter_names = catalog.meter_names if catalog else {}
    meters = [
        MeterView(
            # The state names a catalog meter by its catalog id, as the plans do; another by Polar's.
            name=meter_names.get(str(meter.get("meter")))
            or str(meter.get("meter") or f"Meter {meter.get('meter_id')}"),
            balance=_number(meter.get("balance")),
            consumed=_number(meter.get("consumed_units")),
            credited=_number(meter.get("credited_units")),
        )
        for meter in answer.get("meters") or []
    ]
    return State(subscriptions, benefits, meters)
