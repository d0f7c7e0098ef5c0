"""The delivery job (on the ``billing`` queue, nudged per connection) and the sweeper's part: thin,
the work is in ``forwarding.service``."""

from __future__ import annotations

import logging
import time

import httpx

from provisioning.background import nudge, started
from provisioning.config import Settings
from provisioning.db import Database, get_database
from provisioning.forwarding import service
from provisioning.forwarding.models import DeliveryStatus
from provisioning.observability import logs

log = logging.getLogger(__name__)
# A job hands its connection over to a fresh job after this long, so one busy connection never
# holds a job process for long while others wait.
JOB_BUDGET_SECONDS = 120.0


def deliver(integration_id: str, settings: Settings | None = None) -> int:
    """Send the connection's due deliveries, oldest first, each committed as it goes; stops at the
    first one that is not delivered (it is retried later: the sweeper nudges again when it is due).
    Returns how many were delivered."""
    settings = settings or Settings.from_env()
    started(settings.redis_url, service.nudge_key(integration_id))
    logs.bind(integration_id=integration_id)
    database = get_database()
    delivered = 0
    deadline = time.monotonic() + JOB_BUDGET_SECONDS
    try:
        with httpx.Client() as client:
            while True:
                if time.monotonic() > deadline:
                    nudge(
                        settings.redis_url,
                        service.DELIVER_TASK,
                        service.nudge_key(integration_id),
                        integration_id,
                    )
                    break
                with database.transaction() as session:
                    attempt = service.claim_next(session, settings, integration_id)
                if attempt is None:
                    break
                outcome = service.send(attempt, client)
                with database.transaction() as session:
                    status = service.settle(session, attempt, outcome)
                log.info(
                    "forwarded %s (%s), attempt %d: %s",
                    attempt.delivery_id,
                    attempt.event_type,
                    attempt.number,
                    status.value if outcome.delivered else f"{status.value}, {outcome.error}",
                )
                if status is not DeliveryStatus.DELIVERED:
                    break
                delivered += 1
    finally:
        logs.clear()
    return delivered


def nudge_due(database: Database, settings: Settings) -> int:
    """The sweeper's part: drop previous secrets whose overlap ended, and nudge the delivery job of
    every connection whose next delivery is due. Returns how many were nudged."""
    with database.transaction() as session:
        service.drop_expired_previous_secrets(session)
        due = service.due_integrations(session)
    for integration_id in due:
        nudge(settings.redis_url, service.DELIVER_TASK, service.nudge_key(integration_id), integration_id)
    return len(due)
