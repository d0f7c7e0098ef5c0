"""The ingest job and the sweeper against the local Polar: a backlog sent in batches of 1,000, each
event once; Polar's rate limit defers without counting an attempt; a batch Polar refuses for its
organization retried; events failed for good after the last attempt; concurrent jobs never claim
the same events; the sweeper nudges only connections whose events are due."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest
from polar_emulator import EmulatorServer
from polar_emulator.domain.store import collection
from redis import Redis
from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from provisioning.background import BILLING_QUEUE
from provisioning.config import PolarEnvironment, Settings
from provisioning.db import Database, utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.jobs import provision
from provisioning.runs.models import RunStatus
from provisioning.usage import repository, service, tasks
from provisioning.usage.models import UsageEvent, UsageStatus
from provisioning.usage.service import MAX_ATTEMPTS, NewEvent
from tests import factories


@pytest.fixture
def ready(session: Session, settings: Settings, connect) -> PolarIntegration:
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    return connected.integration


def _record(session: Session, settings: Settings, integration: PolarIntegration, n: int, prefix: str) -> None:
    events = [NewEvent("api_call", "c", external_id=f"{prefix}-{i}") for i in range(n)]
    service.record(session, settings, integration, events)
    session.commit()


def _rows(session: Session) -> list[UsageEvent]:
    session.expire_all()
    return list(session.scalars(select(UsageEvent).order_by(UsageEvent.external_id)))


def _at_polar(emulator: EmulatorServer) -> Counter[str]:
    return Counter(e["external_id"] for e in collection(emulator.store, "events").values())


def _ingest_calls(control: httpx.Client) -> int:
    return sum(1 for r in control.get("/_emulator/requests").json() if r["path"] == "/v1/events/ingest")


def test_a_backlog_is_sent_in_batches_of_a_thousand_each_event_once(
    session: Session,
    settings: Settings,
    database: Database,
    ready: PolarIntegration,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    for prefix, n in (("a", 1000), ("b", 1000), ("c", 500)):
        _record(session, settings, ready, n, prefix)

    summary = tasks.drain(database, settings, ready.id)

    assert summary["ingested"] == 2500 and summary["batches"] == 3 and summary["polar_calls"] == 3
    assert _ingest_calls(control) == 3
    rows = _rows(session)
    assert {r.status for r in rows} == {UsageStatus.INGESTED}
    assert all(r.ingested_at is not None and r.next_attempt_at is None for r in rows)
    at_polar = _at_polar(emulator)
    assert len(at_polar) == 2500 and set(at_polar.values()) == {1}
    assert tasks.drain(database, settings, ready.id)["batches"] == 0  # nothing left


def test_polars_rate_limit_defers_the_events_without_counting_an_attempt(
    session: Session, settings: Settings, database: Database, ready: PolarIntegration, control: httpx.Client
) -> None:
    _record(session, settings, ready, 3, "e")
    control.post(
        "/_emulator/faults",
        json={"path": "/v1/events/ingest", "status": 429, "retry_after": 30, "count": 1},
    ).raise_for_status()

    summary = tasks.drain(database, settings, ready.id)

    assert summary["deferred"] == 3 and summary["ingested"] == 0
    rows = _rows(session)
    assert {(r.status, r.attempts) for r in rows} == {(UsageStatus.PENDING, 0)}
    assert all(
        r.next_attempt_at is not None and r.next_attempt_at > utcnow() + timedelta(seconds=25) for r in rows
    )
    assert tasks.sweep(database, settings) == []  # not due until Polar's Retry-After has passed


def test_a_batch_refused_for_its_organization_is_retried_later(
    session: Session, settings: Settings, database: Database, ready: PolarIntegration, control: httpx.Client
) -> None:
    _record(session, settings, ready, 2, "e")
    # An organization the grant does not reach (Polar answers 422 on each event's organization_id).
    ready.polar_org_id = "00000000-0000-4000-8000-000000000000"
    session.commit()

    summary = tasks.drain(database, settings, ready.id)

    assert summary["retrying"] == 2 and summary["polar_calls"] == 1
    rows = _rows(session)
    assert {(r.status, r.attempts) for r in rows} == {(UsageStatus.PENDING, 1)}
    assert all("organization_id" in (r.last_error or "") for r in rows)


def test_events_fail_for_good_after_the_last_attempt_and_stay_visible(
    session: Session, settings: Settings, database: Database, ready: PolarIntegration, control: httpx.Client
) -> None:
    _record(session, settings, ready, 2, "e")
    session.execute(update(UsageEvent).values(attempts=MAX_ATTEMPTS - 1))
    session.commit()
    control.post(
        "/_emulator/faults", json={"path": "/v1/events/ingest", "status": 500, "count": 10}
    ).raise_for_status()

    summary = tasks.drain(database, settings, ready.id)

    assert summary["failed"] == 2
    rows = _rows(session)
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == {
        (UsageStatus.FAILED, MAX_ATTEMPTS, None)
    }
    assert all(f"gave up after {MAX_ATTEMPTS} attempts" in (r.last_error or "") for r in rows)
    described = service.describe(rows[0])
    assert described["status"] == "failed" and described["last_error"] == rows[0].last_error
    control.delete("/_emulator/faults").raise_for_status()
    assert tasks.sweep(database, settings) == []  # never sent again
    assert tasks.drain(database, settings, ready.id)["batches"] == 0


def test_the_sweeper_nudges_only_connections_whose_events_are_due(
    session: Session, settings: Settings, database: Database, ready: PolarIntegration, redis_conn: Redis
) -> None:
    _record(session, settings, ready, 2, "e")  # nudged after the commit: one job waits
    billing = Queue(BILLING_QUEUE, connection=redis_conn)
    assert billing.count == 1
    assert tasks.sweep(database, settings) == [ready.id]
    assert billing.count == 1  # that job is still waiting: not a second one
    session.execute(update(UsageEvent).values(next_attempt_at=utcnow() + timedelta(minutes=1)))
    session.commit()
    assert tasks.sweep(database, settings) == []


def test_two_jobs_at_once_never_claim_the_same_events(
    committing_database: Database, settings: Settings
) -> None:
    with committing_database.transaction() as session:
        owner = factories.make_owner(session, "Claims")
        integration = PolarIntegration(
            workspace_id=owner.workspace_id,
            environment=PolarEnvironment.SANDBOX,
            status=IntegrationStatus.READY,
            polar_org_id="org-1",
        )
        session.add(integration)
        session.flush()
        events = [NewEvent("api_call", "c", external_id=f"e-{i}") for i in range(1500)]
        service.record(session, settings, integration, events)
        integration_id = integration.id
    first = committing_database.session()
    second = committing_database.session()
    try:
        mine = {r.id for r in service.claim(first, integration_id)}  # not committed yet: rows locked
        theirs = {r.id for r in service.claim(second, integration_id)}
        assert len(mine) == 1000 and len(theirs) == 500 and not mine & theirs
        first.commit()
        second.commit()
        third = committing_database.session()
        assert service.claim(third, integration_id) == []  # both batches claimed until their lease ends
        third.rollback()
        third.close()
    finally:
        first.close()
        second.close()


def test_on_the_local_default_sqlite_events_are_stored_once_and_claimed(
    sqlite_database: Database, settings: Settings
) -> None:
    with sqlite_database.transaction() as session:
        owner = factories.make_owner(session, "Local")
        integration = PolarIntegration(
            workspace_id=owner.workspace_id,
            environment=PolarEnvironment.SANDBOX,
            status=IntegrationStatus.READY,
            polar_org_id="org-1",
        )
        session.add(integration)
        session.flush()
        first = service.record(
            session,
            settings,
            integration,
            [NewEvent("api_call", "c", external_id="a", metadata={"n": 1}), NewEvent("api_call", "c")],
        )
        again = service.record(session, settings, integration, [NewEvent("api_call", "c", external_id="a")])
        integration_id = integration.id
    assert (first.accepted, first.duplicates, again.accepted, again.duplicates) == (2, 0, 0, 1)
    with sqlite_database.transaction() as session:
        claimed = service.claim(session, integration_id)
        assert sorted(r.external_id for r in claimed) == sorted(e["external_id"] for e in first.events)
        assert {r.external_id: r.event_metadata for r in claimed}["a"] == {"n": 1}
        assert service.claim(session, integration_id) == []
        assert repository.mark_ingested(session, [r.id for r in claimed], utcnow()) == 2
