"""A stored secret moved to another row or column never decrypts there: whatever needed it stops
before any Polar call, the connection asks its owner to reconnect, and the owner can still
disconnect or reconnect."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.connect.models import PolarConnectAttempt
from provisioning.connect.service import ConnectError, begin_connect, complete_connect, disconnect
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.service import create_run
from tests.factories import Owner
from tests.provisioning.conftest import consent, polar_requests

INTEGRITY = "failed its integrity check"


def _two_connected(session: Session, settings: Settings, connect, make_owner) -> tuple:
    a = connect()
    b = connect(who=make_owner("Beta Workspace"))
    for connected in (a, b):
        assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    return a.integration, b.integration


def _new_run(session: Session, integration: PolarIntegration) -> str:
    run = create_run(session, integration, trigger="cli")
    session.commit()
    return run.id


def _forget_requests(control: httpx.Client) -> None:
    control.delete("/_emulator/requests").raise_for_status()


def test_tokens_copied_from_another_workspace_make_no_polar_call(
    session, settings, connect, make_owner, control
):
    a, b = _two_connected(session, settings, connect, make_owner)
    b.access_token, b.refresh_token = a.access_token, a.refresh_token
    session.commit()
    _forget_requests(control)

    result = provision(_new_run(session, b), settings)

    assert polar_requests(control) == []
    assert result["status"] == RunStatus.FAILED
    assert INTEGRITY in result["error"] and "Reconnect Polar" in result["error"]
    assert a.access_token not in result["error"]
    session.expire_all()
    assert b.status == IntegrationStatus.NEEDS_RECONNECT
    assert INTEGRITY in (b.last_error or "")
    # Workspace A's own connection is untouched and keeps working.
    assert provision(_new_run(session, a), settings)["status"] == RunStatus.SUCCEEDED


def test_a_copied_refresh_token_is_never_sent_to_polar(session, settings, connect, make_owner, control):
    a, b = _two_connected(session, settings, connect, make_owner)
    b.refresh_token = a.refresh_token
    b.token_expires_at = utcnow() + timedelta(seconds=30)  # due for a refresh
    session.commit()
    _forget_requests(control)

    result = provision(_new_run(session, b), settings)

    assert polar_requests(control) == []
    assert result["status"] == RunStatus.FAILED and INTEGRITY in result["error"]
    session.expire_all()
    assert b.status == IntegrationStatus.NEEDS_RECONNECT


def test_a_secret_moved_to_another_column_of_its_row_fails(session, settings, connect, control):
    connected = connect()
    integration = connected.integration
    integration.access_token = integration.refresh_token
    session.commit()
    _forget_requests(control)

    result = provision(connected.run.id, settings)

    assert polar_requests(control) == []
    assert result["status"] == RunStatus.FAILED and INTEGRITY in result["error"]


def test_the_owner_can_disconnect_and_reconnect_after_a_swap(session, settings, connect, make_owner, control):
    a, b = _two_connected(session, settings, connect, make_owner)
    b.access_token, b.refresh_token = a.access_token, a.refresh_token
    session.commit()
    _forget_requests(control)

    assert disconnect(session, settings, b.workspace_id)
    session.commit()
    # Neither A's token nor anything else went to Polar: A's grant is not revoked.
    assert polar_requests(control) == []
    session.expire_all()
    assert b.status == IntegrationStatus.NOT_CONNECTED and b.access_token is None
    assert provision(_new_run(session, a), settings)["status"] == RunStatus.SUCCEEDED


def test_reconnecting_over_moved_tokens_stores_a_fresh_pair(session, settings, connect, make_owner):
    a, b = _two_connected(session, settings, connect, make_owner)
    b.access_token, b.refresh_token = a.access_token, a.refresh_token
    session.commit()

    again = connect(who=Owner(b.connected_by_user_id, b.workspace_id))

    assert again.integration.id == b.id
    assert provision(again.run.id, settings)["status"] == RunStatus.SUCCEEDED
    # A's grant was not revoked by B's reconnect: A still provisions.
    assert provision(_new_run(session, a), settings)["status"] == RunStatus.SUCCEEDED


def test_a_pkce_verifier_moved_to_another_attempt_is_refused_before_the_code_exchange(
    session, settings, owner, control
):
    first = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    second = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    attempts = {n: session.get(PolarConnectAttempt, n) for n in (first.nonce, second.nonce)}
    attempts[second.nonce].code_verifier = attempts[first.nonce].code_verifier
    session.commit()
    code, state = consent(second.authorize_url)
    _forget_requests(control)

    try:
        complete_connect(
            session, settings, state=state, code=code, user_id=owner.user_id, browser_nonce=second.nonce
        )
    except ConnectError as exc:
        assert INTEGRITY in str(exc)
    else:
        raise AssertionError("a moved verifier was accepted")
    assert [r for r in polar_requests(control) if r["path"].startswith("/v1/oauth2/token")] == []
    assert session.query(ProvisioningRun).count() == 0


def test_provisioning_replaces_a_moved_webhook_secret_with_polars_own(session, settings, connect, make_owner):
    from provisioning.integrations.service import decrypt_secret

    a, b = _two_connected(session, settings, connect, make_owner)
    own = decrypt_secret(settings, b.id, "webhook_secret", b.webhook_secret)
    b.webhook_secret = a.webhook_secret
    session.commit()

    assert provision(_new_run(session, b), settings)["status"] == RunStatus.SUCCEEDED

    session.expire_all()
    assert b.webhook_secret != a.webhook_secret
    assert decrypt_secret(settings, b.id, "webhook_secret", b.webhook_secret) == own
