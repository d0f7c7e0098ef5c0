"""A run runs once, one saga per integration at a time, and a disconnect stops it: real threads,
real PostgreSQL commits, Redis and the emulator over HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from provisioning.connect.service import disconnect
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs import lock as saga_locks
from provisioning.runs.jobs import provision
from provisioning.runs.lock import IntegrationBusy, saga_lock_name
from provisioning.runs.models import ProvisioningRun, RunStatus, StepStatus
from provisioning.runs.service import start_run_for_new_grant
from tests.provisioning.conftest import writes
from tests.provisioning.live import live_connect, wait_for_fault_hit


@pytest.fixture
def live(committing_database, settings):
    return live_connect(committing_database, settings)


def _products(control: httpx.Client, live) -> list[dict]:
    token, _ = live.tokens()
    org = live.integration().polar_org_id
    return control.get(
        "/v1/products/",
        params={"organization_id": org, "limit": 100},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["items"]


def test_a_replaced_run_still_under_way_and_its_replacement_create_each_object_once(live, control):
    """A reconnect cancels the running run and starts another while the first one's job is still
    inside a step (its list calls slowed down): the per-integration saga lock keeps the two jobs
    apart, so the replacement finds what exists and every object is created once."""
    path = "/v1/products/"
    control.post(
        "/_emulator/faults", json={"path": path, "method": "GET", "latency_ms": 1000, "count": 1}
    ).raise_for_status()
    results: dict[str, dict] = {}

    def job(run_id: str) -> None:
        results[run_id] = provision(run_id, live.settings)

    first = threading.Thread(target=job, args=(live.run_id,))
    first.start()
    wait_for_fault_hit(control, path)  # the first run is mid-saga, waiting on Polar
    with live.database.transaction() as s:
        started = start_run_for_new_grant(
            s, s.get(PolarIntegration, live.integration_id), user_id=None, catalog_revision=None
        )
        assert started.created
        second_id = started.run.id
    second = threading.Thread(target=job, args=(second_id,))
    second.start()
    for t in (first, second):
        t.join(timeout=120)

    assert results[live.run_id]["status"] == RunStatus.CANCELLED, results
    assert results[second_id]["status"] == "succeeded", results
    assert "connected again" in live.run().error
    assert len(_products(control, live)) == 4
    assert live.integration().status == IntegrationStatus.READY


def test_a_duplicate_job_does_not_rerun_a_run_already_running(live, control):
    with live.database.transaction() as s:
        s.execute(
            update(ProvisioningRun).where(ProvisioningRun.id == live.run_id).values(status=RunStatus.RUNNING)
        )
    control.delete("/_emulator/requests")

    result = provision(live.run_id, live.settings)

    assert result["status"] == RunStatus.RUNNING
    assert control.get("/_emulator/requests").json() == []
    assert live.run().attempts == 0


def test_a_finished_run_is_not_run_again(live, control):
    assert provision(live.run_id, live.settings)["status"] == "succeeded"
    control.delete("/_emulator/requests")
    assert provision(live.run_id, live.settings)["status"] == "succeeded"
    assert control.get("/_emulator/requests").json() == []
    assert live.run().attempts == 1


def test_a_busy_integration_leaves_the_run_queued_for_a_retry(live, redis_conn, control, monkeypatch):
    monkeypatch.setattr(saga_locks, "SAGA_LOCK_WAIT", 0.1)
    lock = redis_conn.lock(saga_lock_name(live.integration_id), timeout=60)
    assert lock.acquire()
    try:
        control.delete("/_emulator/requests")
        with pytest.raises(IntegrationBusy):
            provision(live.run_id, live.settings)
    finally:
        lock.release()
    assert live.run().status == RunStatus.QUEUED
    assert control.get("/_emulator/requests").json() == []
    assert provision(live.run_id, live.settings)["status"] == "succeeded"


def test_disconnect_cancels_a_queued_run_and_its_job_stops_quietly(live, control):
    with live.database.transaction() as s:
        assert disconnect(s, live.settings, live.workspace_id)
    run = live.run()
    assert run.status == RunStatus.CANCELLED and "disconnected" in run.error
    assert {s.status for s in run.steps} == {StepStatus.SKIPPED}
    control.delete("/_emulator/requests")

    result = provision(live.run_id, live.settings)

    assert result["status"] == RunStatus.CANCELLED
    assert writes(control) == []
    integration = live.integration()
    assert integration.status == IntegrationStatus.NOT_CONNECTED and integration.last_error is None


def test_disconnect_during_a_run_stops_it_and_nothing_is_written_back(live, control):
    path = "/v1/products/"
    control.post(
        "/_emulator/faults", json={"path": path, "method": "GET", "latency_ms": 1000, "count": 1}
    ).raise_for_status()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(provision(live.run_id, live.settings)))
    thread.start()
    wait_for_fault_hit(control, path)  # the run is mid-saga, waiting on Polar
    with live.database.transaction() as s:
        assert disconnect(s, live.settings, live.workspace_id)
    thread.join(timeout=120)

    assert result["status"] == RunStatus.CANCELLED, result
    integration = live.integration()
    assert integration.status == IntegrationStatus.NOT_CONNECTED
    assert integration.access_token is None and integration.webhook_secret is None
    assert integration.last_error is None
    run = live.run()
    assert run.status == RunStatus.CANCELLED
    assert StepStatus.FAILED not in {s.status for s in run.steps}


def test_a_job_for_a_run_abandoned_by_its_worker_resumes_it(live, control):
    """RQ's retry of a job whose work-horse died finds its run still running, with nobody holding
    the saga lock and the lease lapsed: it puts the run back to queued, claims it and finishes it."""
    with live.database.transaction() as s:
        s.execute(
            update(ProvisioningRun)
            .where(ProvisioningRun.id == live.run_id)
            .values(status=RunStatus.RUNNING, attempts=1, lease_expires_at=utcnow() - timedelta(seconds=1))
        )

    result = provision(live.run_id, live.settings)

    assert result["status"] == "succeeded", result
    run = live.run()
    assert run.attempts == 2 and run.error is None
    assert len(_products(control, live)) == 4
