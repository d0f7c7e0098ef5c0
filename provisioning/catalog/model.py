"""The plan catalog as typed, validated values (see ``loader.load_catalog``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

BASE_SCOPES = ("openid", "email", "organizations:read", "organizations:write")
PRODUCT_SCOPES = ("products:read", "products:write")
BENEFIT_SCOPES = ("benefits:read", "benefits:write")
METER_SCOPES = ("meters:read", "meters:write")
WEBHOOK_SCOPES = ("webhooks:read", "webhooks:write")
# What the tenant API's runtime calls need (Polar's OpenAPI security requirements): checkouts,
# customer portal sessions, a customer's state; re-reading a subscription or an order whose events
# cannot be ordered; ingesting usage events.
RUNTIME_SCOPES = (
    "checkouts:write",
    "customer_sessions:write",
    "customers:read",
    "subscriptions:read",
    "orders:read",
    "events:write",
)


@dataclass(frozen=True)
class Meter:
    id: str
    name: str
    event_name: str
    aggregation: str  # count | sum | max | min | avg | unique
    property: str | None = None


@dataclass(frozen=True)
class Benefit:
    id: str
    type: str  # feature_flag | custom | meter_credit
    description: str
    note: str | None = None
    meter: str | None = None
    units: int | None = None
    rollover: bool = False


@dataclass(frozen=True)
class Price:
    type: str  # fixed | metered_unit
    currency: str = "usd"
    amount: int | None = None  # fixed, cents
    meter: str | None = None  # metered_unit
    unit_amount: Decimal | None = None  # metered_unit, cents (decimals allowed)
    cap_amount: int | None = None


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    description: str | None
    interval: str | None  # day | week | month | year, or None for a one-time product
    prices: tuple[Price, ...]
    benefits: tuple[str, ...] = ()
    interval_count: int = 1

    @property
    def env_name(self) -> str:
        """The variable a tenant's deployment reads this plan's Polar product id from:
        ``POLAR_PRODUCT_`` and the id upper-cased, every other character than a letter or digit
        as ``_`` (``pro-monthly`` → ``POLAR_PRODUCT_PRO_MONTHLY``)."""
        return "POLAR_PRODUCT_" + re.sub(r"[^A-Z0-9]", "_", self.id.upper())


@dataclass(frozen=True)
class Catalog:
    plans: tuple[Plan, ...]
    benefits: tuple[Benefit, ...] = ()
    meters: tuple[Meter, ...] = ()
    revision: str = ""
    source: str = field(default="", compare=False)
    # The TOML it was parsed from, kept with the revision so a later run can provision it again.
    text: str = field(default="", compare=False, repr=False)

    def plan(self, plan_id: str) -> Plan:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        raise KeyError(plan_id)

    def required_scopes(self) -> list[str]:
        """The OAuth scopes provisioning this catalog and serving it at runtime (the tenant API's
        checkouts, portal sessions and customer state) need, in a stable order."""
        scopes = [*BASE_SCOPES, *PRODUCT_SCOPES]
        if self.benefits:
            scopes += BENEFIT_SCOPES
        if self.meters:
            scopes += METER_SCOPES
        scopes += WEBHOOK_SCOPES
        scopes += RUNTIME_SCOPES
        return scopes
