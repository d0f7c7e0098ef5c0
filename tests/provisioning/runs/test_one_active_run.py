"""At most one queued or running run per integration: the database refuses a second one (a unique
partial index, on PostgreSQL and SQLite), and the services return or replace the one under way."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from provisioning.config import PolarEnvironment
from provisioning.db import Database
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.service import RunUnderWay, create_run, start_run, start_run_for_new_grant
from tests import factories


def test_the_database_refuses_a_second_active_run_and_the_transaction_goes_on(session, connect):
    connected = connect()
    assert connected.run is not None and connected.run.status == RunStatus.QUEUED

    with pytest.raises(RunUnderWay):
        create_run(session, connected.integration, trigger="admin")
    # Only the refused insert was rolled back: the session is usable, the first run untouched.
    runs = session.scalars(
        select(ProvisioningRun).where(ProvisioningRun.integration_id == connected.integration.id)
    )
    assert [r.id for r in runs] == [connected.run.id]

    started = start_run(session, connected.integration, trigger="cli")
    assert not started.created and started.run.id == connected.run.id


def test_a_reconnect_reuses_a_queued_run_and_replaces_a_running_one(session, connect):
    connected = connect()
    queued = connected.run
    assert queued is not None

    again = start_run_for_new_grant(session, connected.integration, user_id=None, catalog_revision=None)
    assert not again.created and again.run.id == queued.id

    queued.status = RunStatus.RUNNING
    session.flush()
    replaced = start_run_for_new_grant(session, connected.integration, user_id=None, catalog_revision=None)
    assert replaced.created and replaced.run.id != queued.id
    session.refresh(queued)
    assert queued.status == RunStatus.CANCELLED and "connected again" in (queued.error or "")
    assert replaced.run.status == RunStatus.QUEUED


def test_a_reconnect_makes_one_run_even_with_one_queued(connect):
    first = connect()
    second = connect()
    assert first.run is not None and second.run is not None
    assert second.run.id == first.run.id


def test_sqlite_refuses_a_second_active_run_too(sqlite_database: Database) -> None:
    with sqlite_database.transaction() as session:
        owner = factories.make_owner(session, "Lite")
        integration = integrations.add(session, owner.workspace_id, PolarEnvironment.SANDBOX)
        integration.status = IntegrationStatus.READY
        session.flush()
        first = create_run(session, integration, trigger="cli")
        with pytest.raises(RunUnderWay):
            create_run(session, integration, trigger="cli")
        first.status = RunStatus.SUCCEEDED
        session.flush()
        assert create_run(session, integration, trigger="cli").status == RunStatus.QUEUED
