"""Processing a connection's events on the local SQLite default takes the database's write lock
first: a transaction that read first is refused at its first write, without waiting, whenever
another connection (the web recording a delivery) committed in between."""

from __future__ import annotations

import sqlite3
import uuid

import sqlalchemy as sa

from provisioning.billing.repository import due_events, lock_integration
from provisioning.db import Database, utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from tests.factories import make_owner


def _integration(database: Database) -> str:
    with database.transaction() as session:
        owner = make_owner(session, "Lock", email="lock@example.test")
        integration = PolarIntegration(workspace_id=owner.workspace_id, status=IntegrationStatus.READY)
        session.add(integration)
        session.flush()
        return integration.id


def _record_delivery(path: str, integration_id: str) -> None:
    """The web's write, from a connection of its own that does not wait for a lock."""
    web = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        web.execute(
            "INSERT INTO polar_webhook_event (id, integration_id, webhook_id, event_type, payload, "
            "received_at, status, attempts) VALUES (?, ?, ?, 'order.paid', '{}', ?, 'pending', 0)",
            (str(uuid.uuid4()), integration_id, f"msg_{uuid.uuid4().hex}", utcnow().isoformat()),
        )
    finally:
        web.close()


def test_the_processing_lock_holds_the_write_lock_from_the_start(sqlite_database: Database) -> None:
    integration_id = _integration(sqlite_database)
    path = sqlite_database.engine.url.database  # type: ignore[union-attr]

    with sqlite_database.transaction() as session:
        lock_integration(session, integration_id)
        due_events(session, integration_id, utcnow(), 10)  # the batch's read
        try:
            _record_delivery(path, integration_id)
            web_wrote = True
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            web_wrote = False
        # The batch's first write succeeds: nothing committed since it took the lock.
        session.execute(
            sa.text("UPDATE polar_integration SET updated_at = updated_at WHERE id = :id"),
            {"id": integration_id},
        )

    assert web_wrote is False  # it waits for the batch (up to its busy timeout) rather than break it
    _record_delivery(path, integration_id)  # once the batch committed
