"""Processing recorded webhook events into the billing state, and reading that state.

Nothing here commits: ``billing.tasks`` owns the transactions (one per batch of events).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from provisioning.background import nudge_after_commit
from provisioning.billing import repository
from provisioning.billing.processing import Context, MalformedEvent, Outcome, apply
from provisioning.catalog import Catalog
from provisioning.config import Settings
from provisioning.db import iso_utc, utcnow
from provisioning.drift import service as drift
from provisioning.drift.models import Observation
from provisioning.forwarding import service as forwarding
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import PolarIntegration
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent
from provisioning.webhooks.service import PROCESS_EVENTS, processing_key

log = logging.getLogger(__name__)
# After a failure: retried after each of these, then failed (a replay tries again).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=2),
)
MAX_NOTE = 500


@dataclass
class BatchResult:
    by_status: dict[str, int] = field(default_factory=dict)
    refetch: list[str] = field(default_factory=list)  # subscription ids to re-read from Polar


def context(
    session: Session,
    integration: PolarIntegration,
    settings: Settings | None = None,
    running: Catalog | None = None,
) -> Context:
    """What processing needs of the connection; with ``settings`` and the running catalog, product
    and benefit events are compared with the catalog (drift)."""
    plans = {m.polar_product_id: m.plan_id for m in integrations.mappings(session, integration.id)}
    observe = None
    if settings is not None and running is not None:

        def observe(event_type: str, data: dict[str, Any], version: datetime | None) -> Observation:
            return drift.observe(session, settings, integration, event_type, data, running, version)

    return Context(session, integration, plans, observe)


def process_event(ctx: Context, event: PolarWebhookEvent, now: datetime) -> Outcome | None:
    """Apply one event in a savepoint and record how it went on the event. None: it failed (and is
    set to retry, or failed for good)."""
    try:
        with ctx.session.begin_nested():
            outcome = apply(ctx, event.payload)
            ctx.session.flush()
    except MalformedEvent as exc:  # retrying cannot help: failed until a replay after a fix
        _failed(event, f"malformed event: {exc}", now, final=True)
        return None
    except (SQLAlchemyError, ValueError, TypeError, KeyError) as exc:
        log.warning(
            "processing webhook event %s (%s) failed: %s", event.id, event.event_type, type(exc).__name__
        )
        _failed(
            event,
            f"processing failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            now,
        )
        return None
    event.status = outcome.status
    event.note = outcome.note[:MAX_NOTE] if outcome.note else None
    event.processed_at = now
    event.next_attempt_at = None
    if outcome.status == EventStatus.FLAGGED:
        log.warning("webhook event %s flagged: %s", event.id, outcome.note)
    return outcome


def _failed(event: PolarWebhookEvent, note: str, now: datetime, *, final: bool = False) -> None:
    event.attempts = (event.attempts or 0) + 1
    event.note = note[:MAX_NOTE]
    if final or event.attempts > len(RETRY_DELAYS):
        event.status = EventStatus.FAILED
        event.next_attempt_at = None
    else:
        event.status = EventStatus.PENDING
        event.next_attempt_at = now + RETRY_DELAYS[event.attempts - 1]


def process_batch(ctx: Context, settings: Settings, events: Sequence[PolarWebhookEvent]) -> BatchResult:
    """Apply ``events`` in order (the caller holds the connection's processing lock); each one that
    changed the state is queued for the tenant's forwarding endpoint in the same transaction."""
    result = BatchResult()
    now = utcnow()
    endpoint = forwarding.endpoint_of(ctx.session, ctx.integration.id)  # once for the batch
    for event in events:
        outcome = process_event(ctx, event, now)
        status = str(event.status)
        result.by_status[status] = result.by_status.get(status, 0) + 1
        if outcome is None:
            continue
        result.refetch.extend(outcome.refetch)
        if outcome.status == EventStatus.PROCESSED and outcome.forward is not None:
            forwarding.queue_for(
                ctx.session,
                settings,
                endpoint,
                event.id,
                event.event_type,
                _normalized(event, outcome.forward),
            )
    return result


def _normalized(event: PolarWebhookEvent, forward: dict[str, Any]) -> dict[str, Any]:
    """The event as a tenant's app receives it: ours, normalized, with Polar's object."""
    timestamp = event.payload.get("timestamp")
    return {
        "id": event.id,
        "type": forward["type"],
        "timestamp": timestamp if isinstance(timestamp, str) else iso_utc(event.received_at),
        "customer_external_id": forward["customer_external_id"],
        "plan": forward["plan"],
        "status": forward["status"],
        "data": forward["data"],
    }


# -- reading -------------------------------------------------------------------------------------


def customer_state(
    session: Session, integration: PolarIntegration, external_id: str
) -> dict[str, Any] | None:
    """The customer's state from the platform's own records, in the tenant API's shape; None
    while it is not known here (no ``customer.state_changed`` for that customer yet)."""
    known = repository.known_state(session, integration.id, external_id)
    if known is None:
        return None
    return {
        "external_id": external_id,
        "source": "local",
        "active_subscriptions": [
            {
                "id": polar_id,
                "plan": plan,
                "status": status,
                "current_period_end": iso_utc(period_end),
                "cancel_at_period_end": cancel,
            }
            for polar_id, plan, status, period_end, cancel in known.subscriptions
        ],
        "granted_benefits": [
            {"id": polar_id, "benefit_id": benefit_id, "benefit": key}
            for polar_id, benefit_id, key in known.grants
        ],
        "meters": [meter_view(m, known.meter_ids) for m in known.meters],
    }


def meter_view(meter: dict[str, Any], meter_ids: Mapping[str, str]) -> dict[str, Any]:
    """One of Polar's ``CustomerStateMeter`` as the tenant API answers it (from either source):
    named by the catalog's meter id through the connection's meter mappings (``meter_ids``: Polar
    meter id → catalog meter id; null for a meter that is not the catalog's), and by Polar's."""
    return {
        "meter": meter_ids.get(meter["meter_id"]),
        "meter_id": meter["meter_id"],
        "balance": meter.get("balance", 0),
        "consumed_units": meter.get("consumed_units", 0),
        "credited_units": meter.get("credited_units", 0),
    }


@dataclass(frozen=True)
class SubscriptionLine:
    customer: str | None  # the tenant's external id of the customer
    plan: str | None
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool


@dataclass(frozen=True)
class Summary:
    """What the owner's page and the console show of a connection's billing state."""

    customers: int
    active_by_plan: dict[str | None, int]
    latest: list[SubscriptionLine]

    @property
    def active(self) -> int:
        return sum(self.active_by_plan.values())


def summary(session: Session, integration: PolarIntegration, *, latest: int = 10) -> Summary:
    return Summary(
        customers=repository.customer_count(session, integration.id),
        active_by_plan=repository.active_by_plan(session, integration.id),
        latest=[
            SubscriptionLine(external, s.plan_id, s.status, s.current_period_end, s.cancel_at_period_end)
            for s, external in repository.latest_subscriptions(session, integration.id, latest)
        ],
    )


def retry_failing(session: Session, settings: Settings, integration: PolarIntegration) -> int:
    """The connection's events that failed processing (retrying or given up), due again now with
    fresh attempts; the processing job is nudged after commit. Returns how many."""
    events = repository.events_to_replay(
        session, integration_ids=[integration.id], since=None, event_id=None, failing_only=True
    )
    repository.reset_for_replay(session, [e.id for e in events])
    if events:
        nudge_after_commit(
            session, settings.redis_url, PROCESS_EVENTS, processing_key(integration.id), integration.id
        )
    return len(events)
