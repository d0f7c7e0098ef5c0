"""The connection health monitor against the local Polar: a revoked grant, a disabled endpoint
(re-enabled, missed events redelivered) and a deleted one (re-provisioned)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from provisioning.catalog import load_catalog
from provisioning.db import utcnow
from provisioning.health.monitor import check_and_repair, check_due, due
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.runs import repository as runs
from provisioning.runs.jobs import provision
from provisioning.runs.models import RunStatus


@pytest.fixture
def ready(session, settings, connect):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    return connected.integration


def _as_owner(control: httpx.Client, settings, integration) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(settings, integration)}"}


def test_a_healthy_connection_is_recorded_as_such(session, settings, ready) -> None:
    outcome = check_and_repair(session, settings, ready, load_catalog(settings.plans_file))
    session.commit()
    assert outcome.check.ok and outcome.actions == []
    assert ready.health_ok is True and ready.health_checked_at is not None
    assert ready.health["endpoint"] == "present"


def test_a_revoked_grant_asks_the_owner_to_reconnect(session, settings, ready, control) -> None:
    control.post("/_emulator/tokens/revoke-user", json={"email": "demo@polar.local"}).raise_for_status()

    outcome = check_and_repair(session, settings, ready, load_catalog(settings.plans_file))
    session.commit()

    assert not outcome.check.ok and outcome.actions == ["marked needs_reconnect"]
    assert ready.status == IntegrationStatus.NEEDS_RECONNECT
    assert "revoked" in (ready.last_error or "") and ready.health_ok is False


def test_a_disabled_endpoint_is_enabled_again_and_missed_events_redelivered(
    session, settings, ready, control
) -> None:
    headers = _as_owner(control, settings, ready)
    endpoint = f"/v1/webhooks/endpoints/{ready.webhook_endpoint_id}"
    control.patch(endpoint, json={"enabled": False}, headers=headers).raise_for_status()
    # Our receiver (PUBLIC_BASE_URL is a closed port here) never took a delivery: all failed.
    before = control.get("/_emulator/webhook-deliveries").json()
    missed = {d["event_id"] for d in before}
    assert missed and all(d["http_code"] is None or d["http_code"] >= 400 for d in before)

    outcome = check_and_repair(session, settings, ready, load_catalog(settings.plans_file))
    session.commit()

    assert outcome.check.endpoint == "disabled"
    assert outcome.actions[0] == "webhook endpoint enabled again"
    assert outcome.actions[1] == f"{len(missed)} missed event(s) redelivered"
    assert control.get(endpoint, headers=headers).json()["enabled"] is True
    deadline = time.monotonic() + 10  # redeliveries are sent in the background, as at Polar
    while True:
        after = control.get("/_emulator/webhook-deliveries").json()
        if {d["event_id"] for d in after if d["redelivery"]} == missed or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {d["event_id"] for d in after if d["redelivery"]} == missed
    assert ready.status == IntegrationStatus.READY  # nothing the owner must do


def test_a_deleted_endpoint_is_recreated_by_a_run(session, settings, ready, control) -> None:
    headers = _as_owner(control, settings, ready)
    control.delete(f"/v1/webhooks/endpoints/{ready.webhook_endpoint_id}", headers=headers).raise_for_status()

    outcome = check_and_repair(session, settings, ready, load_catalog(settings.plans_file))
    session.commit()

    assert outcome.check.endpoint == "missing"
    run = runs.latest(session, ready.id)
    assert run is not None and run.trigger == "health" and run.status == RunStatus.QUEUED
    assert provision(run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    again = check_and_repair(session, settings, ready, load_catalog(settings.plans_file))
    assert again.check.ok


def test_checks_come_due_after_their_interval(session, settings, ready, database) -> None:
    assert due(session) == []  # just provisioned: its run told us more than a check would
    session.execute(
        sa.update(PolarIntegration)
        .where(PolarIntegration.id == ready.id)
        .values(updated_at=utcnow() - timedelta(hours=7))
    )
    session.commit()
    assert due(session) == [ready.id]
    assert check_due(database, settings, load_catalog(settings.plans_file)) == 1
    session.expire_all()
    assert due(session) == []
    ready.health_checked_at = utcnow() - timedelta(hours=7)
    session.commit()
    assert due(session) == [ready.id]


def test_a_failed_setup_is_not_re_provisioned_by_the_monitor(session, settings, connect, control) -> None:
    control.post(
        "/_emulator/faults", json={"path": "/v1/products/", "method": "POST", "status": 403, "count": 100}
    ).raise_for_status()
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.FAILED
    session.expire_all()
    outcome = check_and_repair(session, settings, connected.integration, load_catalog(settings.plans_file))
    session.commit()
    assert outcome.actions == []  # no endpoint to repair yet: the owner or staff run it again
    assert runs.latest(session, connected.integration.id).id == connected.run.id
