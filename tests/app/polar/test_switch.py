"""A reconnect with another Polar account or organization waits for the owner: nothing changes until
they confirm; keeping revokes the new grant; switching retires the old organization, whose webhook
URL then acknowledges and ignores Polar's deliveries."""

from __future__ import annotations

from flask.testing import FlaskClient
from polar_emulator.config import DEMO_USER_EMAIL, MULTI_ORG_USER_EMAIL
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.config import Settings
from provisioning.connect.models import PolarConnectAttempt, PolarConnectionSwitch, SwitchCleanup
from provisioning.integrations.models import PolarIntegration
from tests.app.conftest import csrf_token
from tests.app.polar.conftest import consent, run_jobs, start_connect, status


def _integration(session: Session, workspace_id: str) -> PolarIntegration:
    session.expire_all()
    integration = session.scalar(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id)
    )
    assert integration is not None
    return integration


def _ready(client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings) -> None:
    answer = consent(start_connect(client, workspace.id), user=DEMO_USER_EMAIL)
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(redis_url, settings)
    assert status(client, workspace.id)["status"] == "ready"


def _held(client: FlaskClient, workspace: Workspace) -> str:
    answer = consent(start_connect(client, workspace.id), user=MULTI_ORG_USER_EMAIL)
    response = client.get(answer.callback_path)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/workspaces/{workspace.id}/polar/switch"
    return response.headers["Location"]


def test_keeping_the_current_connection_changes_nothing(
    owner_client: FlaskClient, workspace: Workspace, session: Session, redis_url: str, settings: Settings
) -> None:
    _ready(owner_client, workspace, redis_url, settings)
    before = _integration(session, workspace.id)
    account, org, path = before.polar_user_id, before.polar_org_id, before.webhook_path_token
    switch_url = _held(owner_client, workspace)
    page = owner_client.get(switch_url).get_data(as_text=True)
    assert "Switch Polar account?" in page and DEMO_USER_EMAIL in page and MULTI_ORG_USER_EMAIL in page
    token = csrf_token(owner_client, switch_url)
    kept = owner_client.post(
        switch_url, data={"csrf_token": token, "decision": "keep"}, follow_redirects=True
    )
    assert "Nothing changed: the workspace stays connected as before." in kept.get_data(as_text=True)
    after = _integration(session, workspace.id)
    assert (after.polar_user_id, after.polar_org_id, after.webhook_path_token) == (account, org, path)
    assert session.scalars(select(PolarConnectAttempt.pending_grant)).all() == [None, None]
    # Nothing waits any more.
    again = owner_client.get(switch_url)
    assert again.status_code == 303 and again.headers["Location"] == f"/workspaces/{workspace.id}/polar"


def test_switching_retires_the_old_organization_and_its_webhook_url(
    owner_client: FlaskClient, workspace: Workspace, session: Session, redis_url: str, settings: Settings
) -> None:
    _ready(owner_client, workspace, redis_url, settings)
    old_path = _integration(session, workspace.id).webhook_path_token
    switch_url = _held(owner_client, workspace)
    token = csrf_token(owner_client, switch_url)
    switched = owner_client.post(switch_url, data={"csrf_token": token, "decision": "switch"})
    assert switched.status_code == 303
    assert switched.headers["Location"] == f"/workspaces/{workspace.id}/polar/organization"
    integration = _integration(session, workspace.id)
    assert integration.webhook_path_token != old_path and integration.polar_org_id is None
    switch = session.scalar(select(PolarConnectionSwitch))
    assert switch is not None and switch.cleanup == SwitchCleanup.DONE and switch.refresh_token is None
    assert switch.from_organization and switch.from_organization["name"] == "Demo Org"
    assert len(switch.products) == 4
    # Late deliveries at the old URL: acknowledged, ignored (no signature needed to ignore them).
    late = owner_client.post(f"/polar/webhooks/{old_path}", data=b"{}", content_type="application/json")
    assert late.status_code == 202 and late.get_json() == {"ignored": "previous organization"}
    unknown = owner_client.post("/polar/webhooks/" + "0" * 32, data=b"{}", content_type="application/json")
    assert unknown.status_code == 404


def test_the_switch_page_without_a_waiting_switch_goes_back(
    owner_client: FlaskClient, workspace: Workspace
) -> None:
    response = owner_client.get(f"/workspaces/{workspace.id}/polar/switch")
    assert response.status_code == 303 and response.headers["Location"] == f"/workspaces/{workspace.id}/polar"
