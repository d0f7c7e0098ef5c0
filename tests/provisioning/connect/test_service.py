"""The connect flow against the emulator's real OAuth server."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from provisioning.connect.models import PolarConnectAttempt
from provisioning.connect.service import (
    ConnectError,
    begin_connect,
    choose_organization,
    complete_connect,
    disconnect,
)
from provisioning.connect.state import ConnectState, decode_state, encode_state
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun
from provisioning.runs.saga import STEP_NAMES
from tests.provisioning.conftest import consent


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _start(session, settings, owner):
    start = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    session.commit()
    return start


def test_authorize_url_has_pkce_scopes_and_an_opaque_state(session, settings, owner):
    start = _start(session, settings, owner)
    assert start.authorize_url.startswith(f"{settings.polar_web_url}/oauth2/authorize?")
    assert "code_challenge_method=S256" in start.authorize_url
    assert "webhooks%3Awrite" in start.authorize_url
    assert owner.workspace_id not in start.authorize_url  # the state is encrypted
    attempt = session.get(PolarConnectAttempt, start.nonce)
    assert attempt is not None and attempt.consumed_at is None and len(attempt.code_verifier) > 80


def test_one_organization_connects_and_queues_a_run(session, settings, connect):
    connected = connect()
    integration = connected.integration
    assert integration.status == IntegrationStatus.PROVISIONING
    assert integration.polar_org_slug == "demo-org"
    assert connected.run is not None and connected.run.status == "queued"
    assert [s.status for s in connected.run.steps] == ["pending"] * len(STEP_NAMES)
    assert "webhooks:write" in integration.scopes
    assert integration.token_expires_at is not None


def test_several_organizations_wait_for_a_choice(session, settings, connect):
    connected = connect("multi@polar.local")
    integration = connected.integration
    assert integration.status == IntegrationStatus.AWAITING_ORGANIZATION
    assert connected.run is None
    assert sorted(o["slug"] for o in integration.reachable_organizations) == ["acme", "acme-labs"]

    with pytest.raises(ConnectError):
        choose_organization(session, integration, "not-an-org", connected.owner.user_id)
    chosen = next(o for o in integration.reachable_organizations if o["slug"] == "acme-labs")
    run = choose_organization(session, integration, chosen["id"], connected.owner.user_id)
    session.commit()
    assert integration.polar_org_id == chosen["id"] and integration.status == "provisioning"
    assert run.status == "queued"


def test_grant_narrowed_to_one_of_several_organizations(session, settings, connect, control):
    orgs = control.post(
        "/_emulator/users",
        json={
            "email": "two@polar.local",
            "organizations": [{"name": "One", "slug": "one-org"}, {"name": "Two", "slug": "two-org"}],
        },
    ).json()["organizations"]
    connected = connect("two@polar.local", organizations=[orgs[1]["id"]])
    assert connected.integration.polar_org_id == orgs[1]["id"]
    assert connected.integration.granted_organization_ids == [orgs[1]["id"]]


def test_no_organization_creates_one_named_after_the_workspace(
    session, settings, connect, control, make_owner
):
    control.post("/_emulator/users", json={"email": "noorg@polar.local"}).raise_for_status()
    owner = make_owner("Zebra Studio")
    connected = connect("noorg@polar.local", who=owner)
    integration = connected.integration
    assert integration.status == "provisioning" and integration.polar_org_id is None

    assert provision(connected.run.id, settings)["status"] == "succeeded"
    session.refresh(integration)
    assert integration.polar_org_name == "Zebra Studio"
    assert integration.polar_org_slug.startswith("zebra-studio-")
    assert integration.status == "ready"


def _refused(session, settings, owner, **kwargs) -> str:
    before = _count(session, PolarIntegration), _count(session, ProvisioningRun)
    with pytest.raises(ConnectError) as info:
        complete_connect(session, settings, **kwargs)
    session.rollback()
    assert (_count(session, PolarIntegration), _count(session, ProvisioningRun)) == before
    return str(info.value)


def test_tampered_state_is_refused(session, settings, owner):
    start = _start(session, settings, owner)
    code, state = consent(start.authorize_url)
    tampered = state[:-6] + ("A" if state[-6] != "A" else "B") + state[-5:]
    message = _refused(
        session, settings, owner, state=tampered, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    assert "could not be verified" in message


def test_expired_state_is_refused(session, settings, owner):
    state = encode_state(
        settings.secret_key,
        ConnectState(owner.workspace_id, owner.user_id, "sandbox", "n" * 20, int(time.time()) - 1),
    )
    with pytest.raises(ValueError, match="expired"):
        decode_state(settings.secret_key, state)
    message = _refused(
        session, settings, owner, state=state, code="x", user_id=owner.user_id, browser_nonce="n" * 20
    )
    assert "expired" in message


def test_replayed_state_is_refused(session, settings, owner):
    start = _start(session, settings, owner)
    code, state = consent(start.authorize_url)
    complete_connect(
        session, settings, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    session.commit()
    message = _refused(
        session, settings, owner, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    assert "already used" in message


def test_failed_callback_burns_the_attempt_when_committed(session, settings, owner):
    start = _start(session, settings, owner)
    code, state = consent(start.authorize_url)
    with pytest.raises(ConnectError, match="did not accept"):
        complete_connect(
            session, settings, state=state, code="bogus", user_id=owner.user_id, browser_nonce=start.nonce
        )
    session.commit()  # as the web callback does: only the consumed attempt is kept
    assert _count(session, PolarIntegration) == 0
    message = _refused(
        session, settings, owner, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    assert "already used" in message


def test_foreign_user_and_foreign_browser_are_refused(session, settings, owner, make_owner):
    other = make_owner("Other Workspace")
    start = _start(session, settings, owner)
    code, state = consent(start.authorize_url)
    assert "another user" in _refused(
        session, settings, owner, state=state, code=code, user_id=other.user_id, browser_nonce=start.nonce
    )
    assert "another browser" in _refused(
        session, settings, owner, state=state, code=code, user_id=owner.user_id, browser_nonce="someone-else"
    )
    # the legitimate callback still works afterwards
    integration = complete_connect(
        session, settings, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    assert integration.status == "provisioning"


def test_missing_scope_is_refused_and_nothing_stored(session, settings, owner):
    start = _start(session, settings, owner)
    code, state = consent(
        start.authorize_url, scope="openid email organizations:read products:read products:write"
    )
    message = _refused(
        session, settings, owner, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    assert "webhooks:write" in message and "Connect Polar again" in message


def test_disconnect_revokes_and_forgets_tokens(session, settings, connect):
    from provisioning.integrations.service import access_token
    from provisioning.polar.oauth import PolarOAuth

    connected = connect()
    token = access_token(settings, connected.integration)
    assert disconnect(session, settings, connected.owner.workspace_id, user_id=connected.owner.user_id)
    session.commit()
    integration = connected.integration
    assert integration.access_token is None and integration.refresh_token is None
    assert integration.status == IntegrationStatus.NOT_CONNECTED
    assert PolarOAuth(settings.polar()).introspect(token).active is False


def test_disconnect_deletes_our_webhook_endpoint_and_keeps_the_products(session, settings, connect, emulator):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == "succeeded"
    session.refresh(connected.integration)
    endpoint_id = connected.integration.webhook_endpoint_id
    store = emulator.store  # Polar's side, read directly: the token is revoked by then

    assert disconnect(session, settings, connected.owner.workspace_id, user_id=connected.owner.user_id)
    session.commit()

    endpoint = store.collections["webhook_endpoints"].get(endpoint_id)
    assert endpoint is None or endpoint.get("deleted_at")
    assert connected.integration.webhook_endpoint_id is None
    products = [
        p
        for p in store.collections["products"].values()
        if p["organization_id"] == connected.integration.polar_org_id
    ]
    assert len(products) == len(connected.integration.product_mappings) == 4
    assert not any(p["is_archived"] for p in products)


def test_reconnecting_to_other_organizations_forgets_what_was_set_up_in_the_old_one(
    session, settings, connect
):
    first = connect()
    assert provision(first.run.id, settings)["status"] == "succeeded"
    session.refresh(first.integration)
    assert first.integration.webhook_secret and first.integration.product_mappings

    again = connect("multi@polar.local")  # the same workspace, a Polar account with other organizations

    integration = again.integration
    assert integration.id == first.integration.id
    assert integration.status == IntegrationStatus.AWAITING_ORGANIZATION
    assert integration.polar_org_id is None
    assert integration.webhook_endpoint_id is None and integration.webhook_secret is None
    assert integration.product_mappings == []


@pytest.mark.parametrize(
    "missing",
    [
        {"polar_oauth_client_id": ""},
        {"polar_oauth_client_secret": ""},
        {"token_encryption_keys": []},
    ],
    ids=["client-id", "client-secret", "encryption-key"],
)
def test_connect_is_refused_clearly_when_the_platform_is_not_configured(session, settings, owner, missing):

    with pytest.raises(ConnectError, match="not fully configured"):
        begin_connect(
            session,
            settings.model_copy(update=missing),
            workspace_id=owner.workspace_id,
            user_id=owner.user_id,
        )
    assert session.scalar(select(func.count()).select_from(PolarConnectAttempt)) == 0


def test_expired_connect_attempts_are_purged_after_a_day(session, settings, owner):
    from datetime import timedelta

    from provisioning.connect.service import purge_expired_attempts
    from provisioning.db import utcnow

    old = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    fresh = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    session.get(PolarConnectAttempt, old.nonce).expires_at = utcnow() - timedelta(days=2)
    session.commit()

    assert purge_expired_attempts(session) == 1
    session.commit()
    assert session.scalars(select(PolarConnectAttempt.nonce)).all() == [fresh.nonce]
