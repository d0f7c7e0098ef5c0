"""Jobs on the billing queue: process a connection's recorded events, re-read a subscription from
Polar; and what the worker's sweeper and ``flask webhooks replay`` call. Thin: the rules are in
``billing.processing``, the bookkeeping in ``billing.service``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from provisioning import background
from provisioning.billing import repository, service
from provisioning.billing.processing import customer_id_of, store_subscription
from provisioning.catalog import load_catalog
from provisioning.config import Settings
from provisioning.db import Database, get_database, utcnow
from provisioning.integrations.tokens import polar_api
from provisioning.polar.errors import ProvisioningError
from provisioning.polar.raw import get_json
from provisioning.ratelimit import lanes
from provisioning.webhooks.service import PROCESS_EVENTS as PROCESS
from provisioning.webhooks.service import processing_key as nudge_key

log = logging.getLogger(__name__)
REFETCH = "provisioning.billing.tasks.refetch_subscription"
BATCH = 200
# A pending event older than this has lost its nudge (Redis was down): the sweeper nudges.
NUDGE_LATE_AFTER = timedelta(seconds=5)


def process(integration_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Process the connection's due events, a batch per transaction, until none is due."""
    settings = settings or Settings.from_env()
    background.started(settings.redis_url, nudge_key(integration_id))
    return drain(get_database(), settings, integration_id)


def drain(database: Database, settings: Settings, integration_id: str) -> dict[str, Any]:
    totals: dict[str, int] = {}
    refetch: list[str] = []
    while True:
        with database.transaction() as session:
            repository.lock_integration(session, integration_id)
            integration = repository.integration(session, integration_id)
            if integration is None:
                break
            events = repository.due_events(session, integration_id, utcnow(), BATCH)
            if not events:
                break
            ctx = service.context(session, integration, settings, load_catalog(settings.plans_file))
            result = service.process_batch(ctx, settings, events)
        for status, count in result.by_status.items():
            totals[status] = totals.get(status, 0) + count
        refetch.extend(result.refetch)
        if len(events) < BATCH:
            break
    for subscription_id in dict.fromkeys(refetch):
        background.nudge(
            settings.redis_url,
            REFETCH,
            f"refetch:{integration_id}:{subscription_id}",
            integration_id,
            subscription_id,
        )
    return {"integration_id": integration_id, "events": totals, "refetch": len(set(refetch))}


def refetch_subscription(integration_id: str, subscription_id: str, settings: Settings | None = None) -> str:
    """Re-read a subscription whose status the events cannot decide, in the background lane, and
    store it if it is newer than the row."""
    settings = settings or Settings.from_env()
    database = get_database()
    background.started(settings.redis_url, f"refetch:{integration_id}:{subscription_id}")
    with database.transaction() as session:
        integration = repository.integration(session, integration_id)
        if integration is None or not integration.access_token:
            return "no connection"
        caller = lanes.background(integration.workspace_id)
        with lanes.lane(caller):  # the client takes its lane when it is built
            api = polar_api(session, settings, integration)
    with lanes.lane(caller):
        try:
            data = get_json(
                api,
                "/v1/subscriptions/{id}",
                id=subscription_id,
                action="read a subscription",
                scope="subscriptions:read",
            )
        except ProvisioningError as exc:
            if exc.status == 404:
                return "gone"
            raise  # RQ retries the job
    with database.transaction() as session:
        repository.lock_integration(session, integration_id)
        integration = repository.integration(session, integration_id)
        if integration is None:
            return "no connection"
        ctx = service.context(session, integration)
        _, applied = store_subscription(ctx, data, customer_id_of(data))
    return "updated" if applied else "unchanged"


def sweep(database: Database, settings: Settings) -> list[str]:
    """Nudge every connection whose events wait longer than a nudge takes, or whose retry is due."""
    now = utcnow()
    with database.transaction() as session:
        late = repository.integrations_with_due_events(session, now - NUDGE_LATE_AFTER, now)
    for integration_id in late:
        background.nudge(settings.redis_url, PROCESS, nudge_key(integration_id), integration_id)
    return late


@dataclass
class Replay:
    selected: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def replay(
    database: Database,
    settings: Settings,
    *,
    integration_ids: list[str] | None = None,
    since: datetime | None = None,
    event_id: str | None = None,
) -> Replay:
    """Reprocess stored events (whatever their status) now, in this process, oldest first. Safe to
    run any time: applying an event again changes nothing that a newer one set."""
    with database.transaction() as session:
        events = repository.events_to_replay(
            session, integration_ids=integration_ids, since=since, event_id=event_id
        )
        ids = [e.id for e in events]
        by_integration = sorted({e.integration_id for e in events})
        repository.reset_for_replay(session, ids)
    outcome = Replay(selected=len(ids))
    for integration_id in by_integration:
        drained = drain(database, settings, integration_id)
        for status, count in drained["events"].items():
            outcome.by_status[status] = outcome.by_status.get(status, 0) + count
    return outcome
