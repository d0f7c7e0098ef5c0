"""One of Polar's webhook events applied to a connection's billing state.

The rules (Polar's sequencing, ``../shared/polar/NOTES.md`` §10):

- **Older never overwrites newer.** Every object carries its version, ``modified_at`` or, never
  modified, ``created_at``; an event whose object is older than the stored row is stale and changes
  nothing. Events of one Polar transaction carry identical data (equal versions), so applying one
  again is harmless: the same event twice changes nothing, and ``subscription.canceled`` sent twice
  is just that.
- **Customer and grant events are not ordered against the rest**: each object is versioned on its
  own, and a subscription or order event also carries its customer, which is stored from there.
- **``customer.state_changed`` carries the whole state**, debounced, stamped with the time Polar
  built it. It sets the customer's meters and confirms its active subscriptions and granted
  benefits. A grant it no longer lists was revoked before that time. A subscription that the state
  says is not active but the row says is (older than the state) cannot be decided from the events:
  it is re-read from Polar in the background (``past_due`` drops out of the active ones, for one).
- **Another organization's event** never touches the state: flagged for staff.
- **Types the platform does not use** are kept and marked ignored (never answered non-2xx: Polar
  disables an endpoint after repeated failures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from provisioning.billing import repository
from provisioning.billing.models import (
    BillingCustomer,
    BillingGrant,
    BillingOrder,
    BillingSubscription,
)
from provisioning.catalog.desired import catalog_benefit_id
from provisioning.drift.models import Observation
from provisioning.integrations.models import PolarIntegration
from provisioning.webhooks.models import EventStatus

T = TypeVar("T", BillingCustomer, BillingSubscription, BillingOrder, BillingGrant)

# Events the state does not need (a checkout's progress is told by its order and subscription).
NOT_FOR_STATE = frozenset(
    {"checkout.created", "checkout.updated", "checkout.expired", "refund.created", "refund.updated"}
)
CATALOG_EVENTS = frozenset({"product.updated", "product.created", "benefit.updated", "benefit.created"})


class MalformedEvent(ValueError):
    """The event lacks what its type promises (an id, a customer): it cannot be applied."""


@dataclass
class Outcome:
    status: EventStatus
    note: str | None = None
    # What changed, for the tenant's forwarded event (None: nothing to forward).
    forward: dict[str, Any] | None = None
    # Subscriptions to re-read from Polar: the events cannot decide their status.
    refetch: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    session: Session
    integration: PolarIntegration
    plans: dict[str, str]  # Polar product id → plan id (the connection's mappings)
    # Drift: compares a product or benefit (type, data, version) with the catalog.
    observe_catalog: Callable[[str, dict[str, Any], datetime | None], Observation] | None = None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def version_of(data: dict[str, Any]) -> datetime | None:
    return parse_time(data.get("modified_at")) or parse_time(data.get("created_at"))


def _newer_or_same(stored: datetime | None, incoming: datetime | None) -> bool:
    """Whether an object at ``incoming`` may replace the row at ``stored``."""
    if stored is None:
        return True
    if incoming is None:
        return False  # an unversioned copy never replaces a versioned one
    return incoming >= stored


def _upsert(
    ctx: Context, model: type[T], polar_id: str, version: datetime | None, **values: Any
) -> tuple[T, bool]:
    """The row for ``polar_id``, set to ``values`` unless it is newer. Returns (row, applied)."""
    row = repository.find(ctx.session, model, ctx.integration.id, polar_id)
    if row is None:
        row = model(integration_id=ctx.integration.id, polar_id=polar_id, version=version, **values)
        ctx.session.add(row)
        return row, True
    if not _newer_or_same(row.version, version):
        return row, False
    for name, value in values.items():
        setattr(row, name, value)
    row.version = version
    return row, True


def _id(data: dict[str, Any], name: str = "id") -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"the event's object has no {name}")
    return value


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def organization_of(event_type: str, data: dict[str, Any]) -> str | None:
    """The organization an event is about, from wherever its type carries it."""
    for source in (data, _dict(data.get("customer")), _dict(data.get("product")), _dict(data.get("benefit"))):
        value = source.get("organization_id")
        if isinstance(value, str) and value:
            return value
    return None


# -- objects -------------------------------------------------------------------------------------


def _customer(ctx: Context, data: dict[str, Any]) -> BillingCustomer | None:
    """Store a customer (from its own event, or embedded in another's); None without an id."""
    stored = _store_customer(ctx, data)
    return stored[0] if stored is not None else None


def _store_customer(ctx: Context, data: dict[str, Any]) -> tuple[BillingCustomer, bool] | None:
    polar_id = data.get("id")
    if not isinstance(polar_id, str) or not polar_id:
        return None
    return _upsert(
        ctx,
        BillingCustomer,
        polar_id,
        version_of(data),
        external_id=data.get("external_id"),
        email=data.get("email"),
        name=data.get("name"),
        deleted_at=parse_time(data.get("deleted_at")),
    )


def store_subscription(
    ctx: Context, data: dict[str, Any], customer_polar_id: str
) -> tuple[BillingSubscription, bool]:
    product_id = data.get("product_id") or _dict(data.get("product")).get("id")
    return _upsert(
        ctx,
        BillingSubscription,
        _id(data),
        version_of(data),
        customer_polar_id=customer_polar_id,
        product_id=product_id,
        plan_id=ctx.plans.get(product_id) if isinstance(product_id, str) else None,
        status=str(data.get("status") or "unknown"),
        amount=data.get("amount") if isinstance(data.get("amount"), int) else None,
        currency=data.get("currency"),
        current_period_start=parse_time(data.get("current_period_start")),
        current_period_end=parse_time(data.get("current_period_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        canceled_at=parse_time(data.get("canceled_at")),
        ended_at=parse_time(data.get("ended_at")),
    )


def _grant_values(data: dict[str, Any], granted: bool) -> dict[str, Any]:
    metadata = data.get("benefit_metadata")
    if metadata is None:
        metadata = _dict(data.get("benefit")).get("metadata")
    return {
        "benefit_id": _id(data, "benefit_id"),
        "benefit_key": catalog_benefit_id(metadata),
        "is_granted": granted,
        "granted_at": parse_time(data.get("granted_at")),
        "revoked_at": parse_time(data.get("revoked_at")),
    }


def customer_id_of(data: dict[str, Any]) -> str:
    value = data.get("customer_id") or _dict(data.get("customer")).get("id")
    if not isinstance(value, str) or not value:
        raise MalformedEvent("the event's object names no customer")
    return value


# -- event types ---------------------------------------------------------------------------------


def _forward(
    event_type: str, data: dict[str, Any], *, external_id: str | None, plan: str | None, status: str | None
) -> dict[str, Any]:
    return {
        "type": event_type,
        "customer_external_id": external_id,
        "plan": plan,
        "status": status,
        "data": data,
    }


def _stale(kind: str) -> Outcome:
    return Outcome(EventStatus.PROCESSED, note=f"stale: a newer version of this {kind} is stored")


def _changed(
    ctx: Context,
    event_type: str,
    data: dict[str, Any],
    customer: BillingCustomer | None,
    *,
    plan: str | None,
    status: str | None,
    note: str | None = None,
) -> Outcome:
    """The event changed the state: forwarded with the customer's external id (from the event, or
    as stored when the event carries none)."""
    if customer is None:
        customer_id = data.get("customer_id")
        if isinstance(customer_id, str):
            customer = repository.find(ctx.session, BillingCustomer, ctx.integration.id, customer_id)
    external_id = customer.external_id if customer is not None else None
    return Outcome(
        EventStatus.PROCESSED,
        note,
        forward=_forward(event_type, data, external_id=external_id, plan=plan, status=status),
    )


def _on_customer(ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None) -> Outcome:
    _id(data)
    if event_type == "customer.deleted" and not data.get("deleted_at") and timestamp is not None:
        data = {**data, "deleted_at": timestamp.isoformat()}
    stored = _store_customer(ctx, data)
    assert stored is not None
    row, applied = stored
    if not applied:
        return _stale("customer")
    return _changed(ctx, event_type, data, row, plan=None, status="deleted" if row.deleted_at else None)


def _on_state(ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None) -> Outcome:
    customer = _customer(ctx, data)
    if customer is None:
        raise MalformedEvent("the customer's state has no customer id")
    if timestamp is None:
        raise MalformedEvent("the customer's state has no timestamp")
    if customer.state_at is not None and customer.state_at > timestamp:
        return Outcome(EventStatus.PROCESSED, note="stale: a newer state of this customer is stored")
    customer.state_at = timestamp
    customer.meters = [
        {
            "meter_id": m.get("meter_id"),
            "consumed_units": m.get("consumed_units", 0),
            "credited_units": m.get("credited_units", 0),
            "balance": m.get("balance", 0),
        }
        for m in data.get("active_meters") or []
        if isinstance(m, dict)
    ]
    listed: set[str] = set()
    for item in data.get("active_subscriptions") or []:
        if isinstance(item, dict):
            row, _ = store_subscription(ctx, item, customer.polar_id)
            listed.add(row.polar_id)
    granted: set[str] = set()
    for item in data.get("granted_benefits") or []:
        if isinstance(item, dict):
            row_g, _ = _upsert(
                ctx,
                BillingGrant,
                _id(item),
                version_of(item),
                customer_polar_id=customer.polar_id,
                **_grant_values(item, True),
            )
            granted.add(row_g.polar_id)
    ctx.session.flush()
    for grant in repository.grants_of(ctx.session, ctx.integration.id, customer.polar_id):
        # Granted here, absent from a newer state: revoked since.
        if (
            grant.is_granted
            and grant.polar_id not in granted
            and (grant.version is None or grant.version < timestamp)
        ):
            grant.is_granted = False
            grant.revoked_at = grant.revoked_at or timestamp
            grant.version = timestamp
    active = repository.active_subscriptions_of(ctx.session, ctx.integration.id, customer.polar_id)
    refetch = [
        s.polar_id
        for s in active
        if s.polar_id not in listed and (s.version is None or s.version < timestamp)
    ]
    plan = next((s.plan_id for s in active if s.plan_id), None)
    outcome = _changed(ctx, event_type, data, customer, plan=plan, status="active" if active else None)
    outcome.refetch = refetch
    return outcome


def _on_subscription(
    ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None
) -> Outcome:
    customer = _customer(ctx, _dict(data.get("customer")))
    row, applied = store_subscription(ctx, data, customer_id_of(data))
    if not applied:
        return _stale("subscription")
    note = None if row.plan_id else "the subscription's product is not one of the catalog's"
    return _changed(ctx, event_type, data, customer, plan=row.plan_id, status=row.status, note=note)


def _on_order(ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None) -> Outcome:
    customer = _customer(ctx, _dict(data.get("customer")))
    product_id = data.get("product_id") or _dict(data.get("product")).get("id")
    amount = data.get("total_amount")
    refunded = data.get("refunded_amount")
    row, applied = _upsert(
        ctx,
        BillingOrder,
        _id(data),
        version_of(data),
        customer_polar_id=customer_id_of(data),
        subscription_polar_id=data.get("subscription_id"),
        product_id=product_id,
        plan_id=ctx.plans.get(product_id) if isinstance(product_id, str) else None,
        status=str(data.get("status") or "unknown"),
        billing_reason=data.get("billing_reason"),
        currency=data.get("currency"),
        total_amount=amount if isinstance(amount, int) else 0,
        refunded_amount=refunded if isinstance(refunded, int) else 0,
    )
    if not applied:
        return _stale("order")
    return _changed(ctx, event_type, data, customer, plan=row.plan_id, status=row.status)


def _on_grant(ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None) -> Outcome:
    customer = _customer(ctx, _dict(data.get("customer")))
    granted = (
        bool(data.get("is_granted")) and not data.get("is_revoked") and event_type != "benefit_grant.revoked"
    )
    row, applied = _upsert(
        ctx,
        BillingGrant,
        _id(data),
        version_of(data),
        customer_polar_id=customer_id_of(data),
        **_grant_values(data, granted),
    )
    if not applied:
        return _stale("grant")
    return _changed(
        ctx, event_type, data, customer, plan=None, status="granted" if row.is_granted else "revoked"
    )


def _on_catalog(ctx: Context, event_type: str, data: dict[str, Any], timestamp: datetime | None) -> Outcome:
    _id(data)
    seen = (
        Observation.NOT_OURS
        if ctx.observe_catalog is None
        else ctx.observe_catalog(event_type, data, version_of(data))
    )
    if seen == Observation.NOT_OURS:
        return Outcome(EventStatus.IGNORED, "not a product or benefit the platform manages")
    if seen == Observation.STALE:
        return _stale(event_type.partition(".")[0])
    return Outcome(EventStatus.PROCESSED)


Handler = Callable[[Context, str, dict[str, Any], datetime | None], Outcome]


def _handler(event_type: str) -> Handler | None:
    if event_type.startswith("customer."):
        return _on_state if event_type == "customer.state_changed" else _on_customer
    if event_type.startswith("subscription."):
        return _on_subscription
    if event_type.startswith("order."):
        return _on_order
    if event_type.startswith("benefit_grant."):
        return _on_grant
    if event_type in CATALOG_EVENTS:
        return _on_catalog
    return None


def apply(ctx: Context, payload: dict[str, Any]) -> Outcome:
    """Apply one event (Polar's JSON payload) to the state. Raises :class:`MalformedEvent` when
    it cannot be applied (the caller records the failure)."""
    event_type = str(payload.get("type") or "")
    data = payload.get("data")
    if event_type in NOT_FOR_STATE:
        return Outcome(EventStatus.IGNORED, f"{event_type} does not change the billing state")
    handler = _handler(event_type)
    if handler is None:
        return Outcome(
            EventStatus.IGNORED, f"unknown event type {event_type!r}" if event_type else "no event type"
        )
    if not isinstance(data, dict):
        raise MalformedEvent("the event has no data object")
    organization = organization_of(event_type, data)
    if organization is not None and organization != ctx.integration.polar_org_id:
        return Outcome(
            EventStatus.FLAGGED,
            f"about organization {organization}, not this connection's ({ctx.integration.polar_org_id})",
        )
    return handler(ctx, event_type, data, parse_time(payload.get("timestamp")))
