"""Queries on the billing state and on the webhook events waiting to be processed into it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    Table,
    bindparam,
    false,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, defer

from provisioning.billing.models import (
    ACTIVE_SUBSCRIPTION_STATUSES,
    BillingCustomer,
    BillingGrant,
    BillingOrder,
    BillingSubscription,
)
from provisioning.integrations.models import PolarIntegration, PolarMeterMapping
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent

T = TypeVar("T", BillingCustomer, BillingSubscription, BillingOrder, BillingGrant)


def find(session: Session, model: type[T], integration_id: str, polar_id: str) -> T | None:
    statement = _FIND.get(model)
    if statement is None:  # built once per model: processing looks objects up for every event
        statement = _FIND[model] = select(model).where(
            model.integration_id == bindparam("integration_id"), model.polar_id == bindparam("polar_id")
        )
    return cast(
        "T | None", session.scalar(statement, {"integration_id": integration_id, "polar_id": polar_id})
    )


_FIND: dict[type[Any], Select[Any]] = {}


class KnownState(NamedTuple):
    """A customer's state as the tenant API reads it: two statements, no ORM objects."""

    subscriptions: list[tuple[str, str | None, str, datetime | None, bool]]  # id, plan, status, end, cancel
    grants: list[tuple[str, str, str | None]]  # id, benefit id, catalog benefit id
    meters: list[dict[str, Any]]
    meter_ids: dict[str, str]  # the connection's meters: Polar meter id → catalog meter id


def _known_state_statements() -> tuple[Select[Any], CompoundSelect[Any]]:
    """The state read's two statements, built once: the tenant API runs them on every state call,
    and building them cost more than running them."""
    customers = cast(Table, BillingCustomer.__table__).c
    subscriptions = cast(Table, BillingSubscription.__table__).c
    grants = cast(Table, BillingGrant.__table__).c
    meters = cast(Table, PolarMeterMapping.__table__).c
    integration_id: BindParameter[str] = bindparam("integration_id")
    customer_id: BindParameter[str] = bindparam("customer_polar_id")
    customer = (
        select(customers.polar_id, customers.state_at, customers.meters)
        .where(
            customers.integration_id == integration_id,
            customers.external_id == bindparam("external_id"),
            customers.deleted_at.is_(None),
        )
        .order_by(customers.version.desc().nulls_last())
        .limit(1)
    )
    active = or_(  # plain parameters: an IN list is expanded anew on every run
        *(
            subscriptions.status == bindparam(f"active_{n}", status)
            for n, status in enumerate(ACTIVE_SUBSCRIPTION_STATUSES)
        )
    )
    state = union_all(
        select(
            literal("s").label("kind"),
            subscriptions.polar_id,
            subscriptions.plan_id.label("first"),
            subscriptions.status.label("second"),
            subscriptions.current_period_end,
            subscriptions.cancel_at_period_end,
        ).where(
            subscriptions.integration_id == integration_id,
            subscriptions.customer_polar_id == customer_id,
            active,
        ),
        select(literal("g"), grants.polar_id, grants.benefit_id, grants.benefit_key, null(), false()).where(
            grants.integration_id == integration_id,
            grants.customer_polar_id == customer_id,
            grants.is_granted.is_(True),
        ),
        select(literal("m"), meters.polar_meter_id, meters.meter_id, null(), null(), false()).where(
            meters.integration_id == integration_id
        ),
    ).order_by("kind", "polar_id")
    return customer, state


_KNOWN_CUSTOMER, _KNOWN_STATE = _known_state_statements()


def known_state(session: Session, integration_id: str, external_id: str) -> KnownState | None:
    """The state of the live customer with that external id (Polar keeps external ids unique per
    organization; a deleted customer's id may be taken again, so the newest live row wins): its
    active subscriptions, granted benefits and the connection's meter mappings in one ``UNION ALL``;
    None until a ``customer.state_changed`` for it arrived. Core statements on the session's
    connection."""
    connection = session.connection()
    customer = connection.execute(
        _KNOWN_CUSTOMER, {"integration_id": integration_id, "external_id": external_id}
    ).first()
    if customer is None or customer.state_at is None:
        return None
    rows: Sequence[Any] = connection.execute(
        _KNOWN_STATE, {"integration_id": integration_id, "customer_polar_id": customer.polar_id}
    ).all()
    return KnownState(
        subscriptions=[(r[1], r[2], r[3], r[4], bool(r[5])) for r in rows if r[0] == "s"],
        grants=[(r[1], r[2], r[3]) for r in rows if r[0] == "g"],
        meters=list(customer.meters or []),
        meter_ids={r[1]: r[2] for r in rows if r[0] == "m"},
    )


def subscriptions_of(
    session: Session, integration_id: str, customer_polar_id: str
) -> Sequence[BillingSubscription]:
    return session.scalars(
        select(BillingSubscription)
        .where(
            BillingSubscription.integration_id == integration_id,
            BillingSubscription.customer_polar_id == customer_polar_id,
        )
        .order_by(BillingSubscription.polar_id)
    ).all()


def active_subscriptions_of(
    session: Session, integration_id: str, customer_polar_id: str
) -> Sequence[BillingSubscription]:
    return [
        s
        for s in subscriptions_of(session, integration_id, customer_polar_id)
        if s.status in ACTIVE_SUBSCRIPTION_STATUSES
    ]


def grants_of(session: Session, integration_id: str, customer_polar_id: str) -> Sequence[BillingGrant]:
    return session.scalars(
        select(BillingGrant)
        .where(
            BillingGrant.integration_id == integration_id, BillingGrant.customer_polar_id == customer_polar_id
        )
        .order_by(BillingGrant.polar_id)
    ).all()


def orders_of(session: Session, integration_id: str, customer_polar_id: str) -> Sequence[BillingOrder]:
    return session.scalars(
        select(BillingOrder)
        .where(
            BillingOrder.integration_id == integration_id, BillingOrder.customer_polar_id == customer_polar_id
        )
        .order_by(BillingOrder.version)
    ).all()


# -- events to process ---------------------------------------------------------------------------


def lock_integration(session: Session, integration_id: str) -> None:
    """Serialize processing per connection until the transaction ends: PostgreSQL's transaction
    advisory lock. On SQLite, the database's write lock, taken first (a write that changes nothing):
    a transaction that read first and writes later is refused at once ("database is locked", no
    busy wait) when another connection, such as the web recording a delivery, committed meanwhile."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"billing:{integration_id}"}
        )
    else:
        session.execute(text("UPDATE polar_integration SET id = id WHERE id = :id"), {"id": integration_id})


def due_events(
    session: Session, integration_id: str, now: datetime, limit: int
) -> Sequence[PolarWebhookEvent]:
    """Pending events of the connection that are due, oldest delivery first (without their raw
    bodies: processing reads the payload)."""
    return session.scalars(
        select(PolarWebhookEvent)
        .options(defer(PolarWebhookEvent.raw_body))
        .where(
            PolarWebhookEvent.integration_id == integration_id,
            PolarWebhookEvent.status == EventStatus.PENDING,
            or_(PolarWebhookEvent.next_attempt_at.is_(None), PolarWebhookEvent.next_attempt_at <= now),
        )
        .order_by(PolarWebhookEvent.received_at, PolarWebhookEvent.id)
        .limit(limit)
    ).all()


def integrations_with_due_events(session: Session, received_before: datetime, now: datetime) -> list[str]:
    """Connections with a pending event the sweeper should nudge: one received before
    ``received_before`` (its nudge is late) or whose retry is due."""
    rows = session.scalars(
        select(PolarWebhookEvent.integration_id)
        .where(
            PolarWebhookEvent.status == EventStatus.PENDING,
            or_(
                (
                    PolarWebhookEvent.next_attempt_at.is_(None)
                    & (PolarWebhookEvent.received_at < received_before)
                ),
                PolarWebhookEvent.next_attempt_at <= now,
            ),
        )
        .distinct()
    ).all()
    return list(rows)


def events_to_replay(
    session: Session,
    *,
    integration_ids: list[str] | None,
    since: datetime | None,
    event_id: str | None,
    failing_only: bool = False,
) -> Sequence[PolarWebhookEvent]:
    query = select(PolarWebhookEvent).order_by(PolarWebhookEvent.received_at, PolarWebhookEvent.id)
    if failing_only:
        query = query.where(
            or_(
                PolarWebhookEvent.status == EventStatus.FAILED,
                (PolarWebhookEvent.status == EventStatus.PENDING) & (PolarWebhookEvent.attempts > 0),
            )
        )
    if integration_ids is not None:
        query = query.where(PolarWebhookEvent.integration_id.in_(integration_ids))
    if since is not None:
        query = query.where(PolarWebhookEvent.received_at >= since)
    if event_id is not None:
        query = query.where(or_(PolarWebhookEvent.id == event_id, PolarWebhookEvent.webhook_id == event_id))
    return session.scalars(query).all()


def reset_for_replay(session: Session, event_ids: list[str]) -> None:
    for start in range(0, len(event_ids), 500):
        session.execute(
            update(PolarWebhookEvent)
            .where(PolarWebhookEvent.id.in_(event_ids[start : start + 500]))
            .values(
                status=EventStatus.PENDING, attempts=0, next_attempt_at=None, note=None, processed_at=None
            )
        )


def integration(session: Session, integration_id: str) -> PolarIntegration | None:
    return session.get(PolarIntegration, integration_id)


def customer_count(session: Session, integration_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(BillingCustomer)
            .where(BillingCustomer.integration_id == integration_id, BillingCustomer.deleted_at.is_(None))
        )
        or 0
    )


def active_by_plan(session: Session, integration_id: str) -> dict[str | None, int]:
    rows = session.execute(
        select(BillingSubscription.plan_id, func.count())
        .where(
            BillingSubscription.integration_id == integration_id,
            BillingSubscription.status.in_(ACTIVE_SUBSCRIPTION_STATUSES),
        )
        .group_by(BillingSubscription.plan_id)
    ).all()
    return {plan: int(count) for plan, count in rows}


def latest_subscriptions(
    session: Session, integration_id: str, limit: int
) -> Sequence[tuple[BillingSubscription, str | None]]:
    """The most recently changed subscriptions, each with its customer's external id."""
    rows = session.execute(
        select(BillingSubscription, BillingCustomer.external_id)
        .outerjoin(
            BillingCustomer,
            (BillingCustomer.integration_id == BillingSubscription.integration_id)
            & (BillingCustomer.polar_id == BillingSubscription.customer_polar_id),
        )
        .where(BillingSubscription.integration_id == integration_id)
        .order_by(BillingSubscription.version.desc().nulls_last(), BillingSubscription.polar_id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]
