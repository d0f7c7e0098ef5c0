"""Tokens die only when Polar says so: a 401 refreshes once through the locked path and retries; a
refresh that lost a race uses the winner's pair; a refresh whose answer was lost says so. Real
commits (the refresh writes in its own transaction, from the run's worker threads), Redis and the
local Polar over HTTP, whose clock expires tokens without waiting."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.tokens import (
    LOST_ANSWER,
    LOST_GRANT,
    fresh_access_token,
    reauthorize,
    refresh_lock_name,
)
from provisioning.polar.errors import ProvisioningError, TransientPolarError
from provisioning.runs.jobs import provision
from tests.provisioning.live import Live, active, live_connect, wait_for_fault_hit

TOKEN_PATH = "/v1/oauth2/token"


@pytest.fixture
def live(committing_database, settings) -> Live:
    return live_connect(committing_database, settings)


def _token_calls(control: httpx.Client) -> list[dict]:
    return [r for r in control.get("/_emulator/requests").json() if r["path"] == TOKEN_PATH]


def _expiring(live: Live) -> None:
    """Our row says the access token expires within the refresh margin."""
    with live.database.transaction() as s:
        s.execute(
            update(PolarIntegration)
            .where(PolarIntegration.id == live.integration_id)
            .values(token_expires_at=utcnow() + timedelta(minutes=1))
        )


def _fresh(live: Live, redis_conn) -> str:
    with live.database.transaction() as s:
        integration = s.get(PolarIntegration, live.integration_id)
        return fresh_access_token(s, live.settings, integration, redis_conn=redis_conn)


def test_a_401_with_a_live_grant_refreshes_once_and_the_run_finishes(live, control):
    """The access token expired at Polar (its clock moved on) while our row thinks it fresh: every
    first call answers 401; one refresh, each call retried once, and the workspace is ready."""
    old_access, old_refresh = live.tokens()
    control.post("/_emulator/clock", json={"advance_seconds": 30 * 86400}).raise_for_status()
    assert not active(live.settings, old_access)
    control.delete("/_emulator/requests")

    result = provision(live.run_id, live.settings)

    assert result["status"] == "succeeded", result
    calls = control.get("/_emulator/requests").json()
    assert any(c["status"] == 401 for c in calls)
    assert len(_token_calls(control)) == 1  # the parallel 401s share one refresh
    integration = live.integration()
    assert integration.status == IntegrationStatus.READY and integration.last_error is None
    new_access, new_refresh = live.tokens()
    assert new_access != old_access and new_refresh != old_refresh and active(live.settings, new_access)


def test_a_401_for_a_token_a_sibling_already_replaced_uses_the_stored_one(live, control, redis_conn):
    stale, _ = live.tokens()
    _expiring(live)
    fresh = _fresh(live, redis_conn)  # a sibling process refreshed: Polar killed the stale pair
    assert fresh != stale and not active(live.settings, stale)
    control.delete("/_emulator/requests")

    assert reauthorize(live.settings, live.integration_id, stale, redis_conn=redis_conn) == fresh

    assert _token_calls(control) == []
    assert live.integration().status != IntegrationStatus.NEEDS_RECONNECT


def test_a_refresh_that_lost_the_race_uses_the_winners_pair(live, control, redis_conn):
    """The token lock lapsed (a Redis failover): a sibling refreshed while our refresh was on its way
    with the same refresh token, which Polar then refuses (invalid_grant). The database holds the
    sibling's live pair: we use it, and the workspace is not asked to reconnect."""
    _expiring(live)
    control.post(
        "/_emulator/faults", json={"path": TOKEN_PATH, "method": "POST", "latency_ms": 1500, "count": 1}
    ).raise_for_status()
    ours: dict[str, object] = {}

    def slow_refresh() -> None:
        try:
            ours["token"] = _fresh(live, redis_conn)
        except Exception as exc:  # the assertion below shows it
            ours["error"] = exc

    thread = threading.Thread(target=slow_refresh)
    thread.start()
    wait_for_fault_hit(control, TOKEN_PATH)  # our refresh is at Polar, held
    redis_conn.delete(refresh_lock_name(live.integration_id))  # the lock is lost
    winner = _fresh(live, redis_conn)
    thread.join(timeout=30)

    assert ours == {"token": winner}, ours
    assert [c["status"] for c in _token_calls(control)][-2:] == [200, 400]  # the winner's, then ours
    integration = live.integration()
    assert integration.status != IntegrationStatus.NEEDS_RECONNECT and integration.last_error is None
    assert live.tokens()[0] == winner and active(live.settings, winner)


def test_a_refresh_whose_answer_is_lost_after_polar_rotated_says_so_then_asks_to_reconnect(
    live, control, redis_conn
):
    _expiring(live)
    control.post(
        "/_emulator/faults",
        json={"path": TOKEN_PATH, "method": "POST", "status": 504, "when": "after", "count": 1},
    ).raise_for_status()

    with pytest.raises(TransientPolarError, match="did not answer"):
        _fresh(live, redis_conn)
    integration = live.integration()
    assert integration.token_refresh_unanswered_at is not None
    assert integration.last_error is not None and LOST_ANSWER in integration.last_error
    assert integration.status != IntegrationStatus.NEEDS_RECONNECT

    # The retry: Polar had rotated, so the refresh token we hold is dead. Said once, in words.
    with pytest.raises(ProvisioningError) as refused:
        _fresh(live, redis_conn)
    assert refused.value.needs_reconnect and LOST_GRANT in str(refused.value)
    integration = live.integration()
    assert integration.status == IntegrationStatus.NEEDS_RECONNECT
    assert integration.last_error is not None and LOST_GRANT in integration.last_error
    assert len(_token_calls(control)) >= 2


def test_a_refresh_whose_answer_is_lost_before_polar_acted_just_works_on_retry(live, control, redis_conn):
    _expiring(live)
    control.post(
        "/_emulator/faults", json={"path": TOKEN_PATH, "method": "POST", "status": 504, "count": 1}
    ).raise_for_status()

    with pytest.raises(TransientPolarError):
        _fresh(live, redis_conn)
    assert live.integration().token_refresh_unanswered_at is not None

    token = _fresh(live, redis_conn)

    integration = live.integration()
    assert integration.token_refresh_unanswered_at is None and active(live.settings, token)
    assert integration.last_error is None
    assert integration.status != IntegrationStatus.NEEDS_RECONNECT
