"""The token pair under concurrency: refresh, disconnect and reconnect share one lock per
integration; a refresh writes only over the refresh token it used, in its own transaction; client
errors are the operator's, not the owner's. Real PostgreSQL commits, Redis and the emulator."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from provisioning.connect.service import disconnect
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import store_tokens
from provisioning.integrations.tokens import OAuthClientConfigError, fresh_access_token, refresh_lock_name
from provisioning.polar.errors import TransientPolarError
from provisioning.polar.oauth import PolarOAuth
from provisioning.runs.models import ProvisioningRun
from tests.provisioning.live import active, live_connect, wait_for_fault_hit


@pytest.fixture
def live(committing_database, settings):
    return live_connect(committing_database, settings)


def _expire_soon(live) -> None:
    with live.database.transaction() as s:
        s.execute(
            update(PolarIntegration)
            .where(PolarIntegration.id == live.integration_id)
            .values(token_expires_at=utcnow() + timedelta(minutes=1))
        )


def _rotate_as_a_refresh_would(live) -> tuple[str, str]:
    """What a refresh holding the lock does: rotate at Polar and commit the new pair."""
    _, old_refresh = live.tokens()
    tokens = PolarOAuth(live.settings.polar()).refresh(old_refresh)
    with live.database.transaction() as s:
        store_tokens(live.settings, s.get(PolarIntegration, live.integration_id), tokens)
    return tokens.access_token, tokens.refresh_token


def test_disconnect_waits_for_a_refresh_and_revokes_the_pair_it_wrote(live, redis_conn):
    lock = redis_conn.lock(refresh_lock_name(live.integration_id), timeout=60)
    assert lock.acquire()
    done = threading.Event()

    def owner_disconnects() -> None:
        with live.database.transaction() as s:
            disconnect(s, live.settings, live.workspace_id)
        done.set()

    thread = threading.Thread(target=owner_disconnects)
    thread.start()
    try:
        new_access, _ = _rotate_as_a_refresh_would(live)  # the refresh in flight, holding the lock
        assert not done.is_set()  # disconnect is still waiting for the lock
    finally:
        lock.release()
    thread.join(timeout=60)

    assert done.is_set()
    integration = live.integration()
    assert integration.access_token is None and integration.refresh_token is None
    assert integration.status == IntegrationStatus.NOT_CONNECTED
    assert not active(live.settings, new_access)  # the pair the refresh wrote is revoked at Polar


def test_a_refresh_never_resurrects_tokens_cleared_while_it_was_in_flight(live, control):
    """Even if a writer bypassed the lock (it expired), the refresh writes only over the refresh
    token it read: the cleared row stays cleared and the orphaned new pair is revoked."""
    _expire_soon(live)
    control.post(
        "/_emulator/faults",
        json={"path": "/v1/oauth2/token", "method": "POST", "latency_ms": 800, "count": 1},
    ).raise_for_status()
    errors: list[BaseException] = []

    def worker_refreshes() -> None:
        session = live.database.session()
        try:
            integration = session.get(PolarIntegration, live.integration_id)
            fresh_access_token(session, live.settings, integration)
        except BaseException as exc:
            errors.append(exc)
        finally:
            session.close()

    thread = threading.Thread(target=worker_refreshes)
    thread.start()
    wait_for_fault_hit(control, "/v1/oauth2/token")  # the refresh has read the row and is at Polar
    with live.database.transaction() as s:  # a disconnect that did not wait for the lock
        s.execute(
            update(PolarIntegration)
            .where(PolarIntegration.id == live.integration_id)
            .values(access_token=None, refresh_token=None, token_expires_at=None, status="not_connected")
        )
    thread.join(timeout=60)

    assert len(errors) == 1 and isinstance(errors[0], TransientPolarError)
    integration = live.integration()
    assert integration.access_token is None and integration.refresh_token is None
    refreshed = [r for r in control.get("/_emulator/requests").json() if r["path"] == "/v1/oauth2/token"]
    assert refreshed and refreshed[-1]["status"] == 200
    revokes = [r for r in control.get("/_emulator/requests").json() if r["path"] == "/v1/oauth2/revoke"]
    assert revokes, "the orphaned pair was not revoked"


def test_reconnect_waits_for_a_refresh_then_revokes_the_previous_grant(live, redis_conn):
    lock = redis_conn.lock(refresh_lock_name(live.integration_id), timeout=60)
    assert lock.acquire()
    result: dict = {}

    def owner_reconnects() -> None:
        result["integration"] = live.reconnect()

    thread = threading.Thread(target=owner_reconnects)
    thread.start()
    try:
        refreshed_access, _ = _rotate_as_a_refresh_would(live)
    finally:
        lock.release()
    thread.join(timeout=60)

    assert "integration" in result
    new_access, _ = live.tokens()
    assert new_access != refreshed_access  # the reconnect's pair, not the refresh's, is stored
    assert active(live.settings, new_access)
    assert not active(live.settings, refreshed_access)  # the previous grant is revoked at Polar


def test_reconnect_revokes_the_previous_grant(live):
    old_access, _ = live.tokens()
    live.reconnect()
    new_access, _ = live.tokens()
    assert new_access != old_access
    assert active(live.settings, new_access) and not active(live.settings, old_access)


def test_invalid_client_is_an_operator_error_not_a_reconnect(live, caplog):
    _expire_soon(live)
    bad = live.settings.model_copy(update={"polar_oauth_client_secret": "not-the-secret"})
    session = live.database.session()
    try:
        integration = session.get(PolarIntegration, live.integration_id)
        with caplog.at_level(logging.DEBUG), pytest.raises(OAuthClientConfigError) as info:
            fresh_access_token(session, bad, integration)
    finally:
        session.close()

    assert "invalid_client" in str(info.value) and "POLAR_OAUTH_CLIENT_SECRET" in str(info.value)
    assert info.value.needs_reconnect is False
    integration = live.integration()
    assert integration.status == IntegrationStatus.PROVISIONING  # left alone
    assert integration.last_error is None
    _, refresh = live.tokens()
    assert refresh and refresh not in caplog.text and "not-the-secret" not in caplog.text
    assert "POLAR_OAUTH_CLIENT_ID" in caplog.text


def test_a_refresh_commits_only_the_token_pair_not_the_callers_session(live):
    _expire_soon(live)
    _, old_refresh = live.tokens()
    session = live.database.session()
    try:
        run = session.get(ProvisioningRun, live.run_id)
        integration = session.get(PolarIntegration, live.integration_id)
        run.trigger = "uncommitted"  # the caller's unrelated, unfinished work
        token = fresh_access_token(session, live.settings, integration)
        assert integration.token_expires_at > utcnow() + timedelta(minutes=30)  # object refreshed
        session.rollback()
    finally:
        session.close()

    assert live.run().trigger == "connect"  # the caller's work was not committed
    new_access, new_refresh = live.tokens()
    assert new_access == token and new_refresh != old_refresh  # the new pair was
    with live.database.transaction() as s:
        assert s.scalar(
            select(PolarIntegration.status).where(PolarIntegration.id == live.integration_id)
        ) == (IntegrationStatus.PROVISIONING)
