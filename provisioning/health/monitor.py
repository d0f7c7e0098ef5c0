"""The connection health monitor: checks connected integrations on a schedule, records what it
found on each, and repairs what needs no owner.

Polar sends no event when an owner revokes the grant, narrows its organizations or when Polar
disables our webhook endpoint after failed deliveries, so nothing else would notice until a run
failed. Per check: the access token is refreshed when it expires within a day; then

- grant revoked, organization unreachable, or scopes missing for what the platform needs →
  ``needs_reconnect`` with the reason in words (the owner's page and the console show it);
- endpoint disabled by Polar → enabled again, and the events whose deliveries failed meanwhile are
  redelivered (Polar's ``POST /v1/webhooks/events/{id}/redeliver``);
- endpoint deleted, or its URL or events changed → a provisioning run recreates it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.errors import ConnectPolarError
from provisioning.health.checks import HealthCheck, check_connection
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarBusy
from provisioning.ratelimit import lanes
from provisioning.ratelimit import registry as ratelimit
from provisioning.runs.queue import enqueue_after_commit
from provisioning.runs.service import RunRefused, start_run

log = logging.getLogger(__name__)
CHECK_EVERY = timedelta(hours=6)
REFRESH_WITHIN = timedelta(days=1)
PER_SWEEP = 10  # connections checked per sweep: spreads the fleet over the interval
CHECKED = (IntegrationStatus.READY, IntegrationStatus.FAILED)
REDELIVER_AT_MOST = 100


@dataclass
class Outcome:
    check: HealthCheck
    actions: list[str] = field(default_factory=list)


def check_and_repair(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    catalog: Catalog,
    *,
    repair: bool = True,
) -> Outcome:
    """Check one connection, repair what can be repaired, record it on the row (the caller commits)."""
    outcome = Outcome(
        check_connection(session, settings, integration, catalog, refresh_within=REFRESH_WITHIN)
    )
    check = outcome.check
    if repair and integration.access_token:
        try:
            _repair(session, settings, integration, check, outcome)
        except ConnectPolarError as exc:
            outcome.actions.append(f"repair failed: {exc}")
    integration.health_checked_at = utcnow()
    integration.health_ok = check.ok
    integration.health = {**check.as_dict(), "actions": outcome.actions}
    session.flush()
    return outcome


def _repair(
    session: Session, settings: Settings, integration: PolarIntegration, check: HealthCheck, outcome: Outcome
) -> None:
    reason = None
    if check.grant_active is False:
        reason = "Polar reports the grant revoked: reconnect Polar from the billing page"
    elif check.organization_reachable is False:
        reason = "The Polar grant no longer reaches the organization we set up: reconnect Polar and allow it"
    elif check.missing_scopes:
        reason = "Reconnect Polar to grant " + ", ".join(check.missing_scopes)
    if reason is not None:
        if integration.status in CHECKED:
            integration.status = IntegrationStatus.NEEDS_RECONNECT
            integration.last_error = reason
            outcome.actions.append("marked needs_reconnect")
        return
    if integration.status != IntegrationStatus.READY:
        return  # a failed setup has no endpoint to repair yet: its owner or staff run it again
    if check.endpoint == "disabled":
        api = PolarApi(settings.polar(integration.environment).api_url, access_token(settings, integration))
        _reenable(api, integration, outcome)
    elif check.endpoint in ("missing", "different"):
        try:
            started = start_run(session, integration, trigger="health")
        except RunRefused as exc:
            outcome.actions.append(f"could not re-provision: {exc}")
            return
        if started.created:
            enqueue_after_commit(session, started.run.id, settings.redis_url)
        outcome.actions.append(f"re-provisioning to restore the webhook endpoint (run {started.run.id})")


def _reenable(api: PolarApi, integration: PolarIntegration, outcome: Outcome) -> None:
    endpoint_id = integration.webhook_endpoint_id
    assert endpoint_id is not None
    api.write(
        api.sdk.webhooks.update_webhook_endpoint,
        endpoint_id,
        action="enable the webhook endpoint again",
        scope="webhooks:write",
        enabled=True,
    )
    outcome.actions.append("webhook endpoint enabled again")
    failed: dict[str, None] = {}
    delivered: set[str] = set()
    for delivery in api.iter_all(
        api.sdk.webhooks.list_webhook_deliveries,
        action="list the webhook deliveries",
        scope="webhooks:read",
        endpoint_id=endpoint_id,
    ):
        event_id = str(delivery.webhook_event.id)
        if delivery.succeeded:
            delivered.add(event_id)
        else:
            failed.setdefault(event_id, None)
    missed = [e for e in failed if e not in delivered][:REDELIVER_AT_MOST]
    for event_id in missed:
        api.write(
            api.sdk.webhooks.redeliver_webhook_event,
            event_id,
            action="redeliver a missed webhook event",
            scope="webhooks:write",
        )
    if missed:
        outcome.actions.append(f"{len(missed)} missed event(s) redelivered")


def due(session: Session, *, every: timedelta = CHECK_EVERY, limit: int = PER_SWEEP) -> list[str]:
    """Connections neither checked nor changed for ``every`` (a connection just set up or just
    failed is not due: its run has told us more recently), the longest-waiting first."""
    since = func.coalesce(PolarIntegration.health_checked_at, PolarIntegration.updated_at)
    return list(
        session.scalars(
            select(PolarIntegration.id)
            .where(
                PolarIntegration.status.in_(CHECKED),
                PolarIntegration.access_token.is_not(None),
                since < utcnow() - every,
            )
            .order_by(since.asc(), PolarIntegration.id)
            .limit(limit)
        )
    )


def check_due(
    database: Database, settings: Settings, catalog: Catalog, *, every: timedelta = CHECK_EVERY
) -> int:
    """The periodic part (the worker's sweeper): check what is due, each in its own transaction,
    for connections to environments this deployment serves. Returns how many were checked."""
    with database.transaction() as session:
        ids = due(session, every=every)
    checked = 0
    ratelimit.install(settings)
    for integration_id in ids:
        try:
            with database.transaction() as session:
                # No row lock: a token refresh during the check writes the row in its own transaction.
                integration = session.get(PolarIntegration, integration_id)
                if integration is None or not settings.serves(integration.environment):
                    continue
                # Background work: the budget's background lane, fair across workspaces.
                with lanes.lane(lanes.background(integration.workspace_id)):
                    outcome = check_and_repair(session, settings, integration, catalog)
                checked += 1
                if not outcome.check.ok:
                    log.warning(
                        "health check of integration %s: %s; %s",
                        integration_id,
                        "; ".join(outcome.check.problems),
                        "; ".join(outcome.actions) or "no action",
                    )
        except PolarBusy as exc:
            log.info("health checks paused: %s; the rest are checked at a later sweep", exc)
            break
        except (ConnectPolarError, redis.exceptions.RedisError) as exc:
            log.warning("health check of integration %s failed: %s", integration_id, type(exc).__name__)
    return checked
