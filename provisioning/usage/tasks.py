"""The ingest job on the billing queue, and what the worker's sweeper calls. Thin: the steps are
in ``usage.service``; each runs in its own transaction here."""

from __future__ import annotations

import logging
from typing import Any

from provisioning import background
from provisioning.config import Settings
from provisioning.db import Database, get_database, utcnow
from provisioning.ratelimit import registry as ratelimit
from provisioning.usage import repository, service
from provisioning.usage.service import INGEST_JOB, nudge_key

log = logging.getLogger(__name__)
# Batches one job sends before it hands the connection back to the queue (behind other
# connections' jobs), so a connection with a large backlog does not hold a worker to itself.
BATCHES_PER_JOB = 20


def ingest(integration_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Send the connection's due usage events to Polar, a batch at a time, until none is due."""
    settings = settings or Settings.from_env()
    background.started(settings.redis_url, nudge_key(integration_id))
    return drain(get_database(), settings, integration_id)


def drain(database: Database, settings: Settings, integration_id: str) -> dict[str, Any]:
    ratelimit.install(settings)  # background calls draw on the shared budget
    totals = service.Sent()
    batches = 0
    while True:
        with database.transaction() as session:
            rows = service.claim(session, integration_id)
        if not rows:
            break
        with database.transaction() as session:
            sent = service.send(session, settings, integration_id, rows)
        batches += 1
        totals.ingested += sent.ingested
        totals.failed += sent.failed
        totals.retrying += sent.retrying
        totals.deferred += sent.deferred
        totals.calls += sent.calls
        if not sent.go_on:
            break
        if batches >= BATCHES_PER_JOB:
            background.nudge(settings.redis_url, INGEST_JOB, nudge_key(integration_id), integration_id)
            break
    return {
        "integration_id": integration_id,
        "batches": batches,
        "ingested": totals.ingested,
        "failed": totals.failed,
        "retrying": totals.retrying,
        "deferred": totals.deferred,
        "polar_calls": totals.calls,
    }


def sweep(database: Database, settings: Settings) -> list[str]:
    """Nudge every connection with pending usage that is due: its nudge was lost (Redis down when
    it was stored, a job lost with its worker) or its retry has come."""
    with database.transaction() as session:
        due = repository.integrations_with_due(session, utcnow())
    nudged: list[str] = []
    for integration_id in due:
        if not background.nudge(settings.redis_url, INGEST_JOB, nudge_key(integration_id), integration_id):
            break  # Redis is unreachable: the next sweep tries again
        nudged.append(integration_id)
    if nudged:
        log.info("usage: nudged ingestion for %d connection(s) with due events", len(nudged))
    return nudged
