"""Test mode and live mode side by side: a workspace connected to Polar's sandbox and production,
each through its own local Polar (separate servers, accounts, tokens and OAuth clients, as at
Polar), and no token ever sent to the other environment's endpoints."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from provisioning.catalog import load_catalog
from provisioning.catalog.desired import PLAN_KEY
from provisioning.config import PolarEndpoints, PolarEnvironment, Settings
from provisioning.connect.service import ConnectError, begin_connect, complete_connect, disconnect
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import access_token, get_integration
from provisioning.reconcile.diff import plan_diff
from provisioning.runs import repository as runs
from provisioning.runs.jobs import provision
from provisioning.runs.models import RunStatus
from provisioning.runs.service import create_run
from provisioning.status import environments_overview
from tests.factories import Owner
from tests.live_polar import LivePolar
from tests.provisioning.conftest import consent


@pytest.fixture
def both(settings: Settings, live_polar: LivePolar) -> Settings:
    """The deployment serves sandbox (the default) and production, each with its own OAuth client."""
    live = PolarEndpoints(
        environment=PolarEnvironment.PRODUCTION,
        api_url=live_polar.url,
        web_url=live_polar.url,
        client_id=live_polar.client_id,
        client_secret=live_polar.client_secret,
        redirect_uri=live_polar.redirect_uri,
    )
    return settings.model_copy(update={"other_polar_environments": (live,)})


@pytest.fixture
def production(live_polar: LivePolar) -> httpx.Client:
    return live_polar.control


def connect_to(session: Session, settings: Settings, owner: Owner, environment: str) -> PolarIntegration:
    start = begin_connect(
        session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id, environment=environment
    )
    session.commit()
    code, state = consent(start.authorize_url)
    integration = complete_connect(
        session,
        settings,
        state=state,
        code=code,
        user_id=owner.user_id,
        browser_nonce=start.nonce,
        environment=environment,
    )
    session.commit()
    return integration


def requests_of(client: httpx.Client) -> list[dict]:
    return client.get("/_emulator/requests").json()


def test_a_workspace_connects_and_provisions_both_environments(session, both, owner, control, production):
    sandbox = connect_to(session, both, owner, "sandbox")
    live = connect_to(session, both, owner, "production")

    assert (sandbox.environment, live.environment) == (PolarEnvironment.SANDBOX, PolarEnvironment.PRODUCTION)
    assert sandbox.id != live.id and sandbox.workspace_id == live.workspace_id
    for integration in (sandbox, live):
        run = runs.latest(session, integration.id)
        assert provision(run.id, both)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    assert sandbox.status == live.status == IntegrationStatus.READY
    assert sandbox.webhook_endpoint_id != live.webhook_endpoint_id

    # Each local Polar saw only its own OAuth client, and never a token it did not issue.
    sandbox_seen = requests_of(control)
    live_seen = requests_of(production)
    live_client = both.polar("production").client_id
    assert {r["client"] for r in sandbox_seen} - {None} == {both.polar("sandbox").client_id}
    assert {r["client"] for r in live_seen} - {None} == {live_client}
    assert not [r for r in sandbox_seen + live_seen if r["status"] == 401]
    # Both provisioned their own catalog objects in their own organization.
    for client, integration in ((control, sandbox), (production, live)):
        products = client.get(
            "/v1/products/",
            params={"organization_id": integration.polar_org_id, "limit": 100},
            headers={"Authorization": f"Bearer {access_token(both, integration)}"},
        ).json()["items"]
        assert {p["metadata"][PLAN_KEY] for p in products} == {
            p.id for p in load_catalog(both.plans_file).plans
        }

    # The page shows both modes, test mode first.
    modes = environments_overview(session, both, owner.workspace_id)
    assert [(m["environment"], m["mode"], m["status"]) for m in modes] == [
        ("sandbox", "test mode", "ready"),
        ("production", "live mode", "ready"),
    ]


def test_a_refresh_and_a_diff_go_to_the_connection_s_own_environment(
    session, both, owner, control, production
):
    connect_to(session, both, owner, "sandbox")
    live = connect_to(session, both, owner, "production")
    provision(runs.latest(session, live.id).id, both)
    control.delete("/_emulator/requests")
    production.delete("/_emulator/requests")

    live.token_expires_at = utcnow() + timedelta(seconds=30)  # due for a refresh
    session.commit()
    again = create_run(session, live, trigger="cli")
    session.commit()
    assert provision(again.id, both)["status"] == RunStatus.SUCCEEDED
    session.expire_all()  # the job committed the refreshed pair
    assert plan_diff(session, both, owner.workspace_id, environment="production") == []

    refreshes = [r for r in requests_of(production) if r["path"] == "/v1/oauth2/token"]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200
    assert requests_of(control) == []  # sandbox heard nothing of it


def test_a_state_made_for_sandbox_is_refused_at_the_production_callback(session, both, owner, production):
    start = begin_connect(
        session, both, workspace_id=owner.workspace_id, user_id=owner.user_id, environment="sandbox"
    )
    session.commit()
    code, state = consent(start.authorize_url)
    with pytest.raises(ConnectError, match="another Polar environment"):
        complete_connect(
            session,
            both,
            state=state,
            code=code,
            user_id=owner.user_id,
            browser_nonce=start.nonce,
            environment="production",
        )
    session.rollback()
    assert get_integration(session, owner.workspace_id, "production") is None
    assert requests_of(production) == []  # the sandbox code never went to production


def test_a_connection_to_an_environment_no_longer_served_is_left_alone(
    session, both, settings, owner, control, production
):
    live = connect_to(session, both, owner, "production")
    run = runs.latest(session, live.id)
    live.status = IntegrationStatus.READY  # as after an earlier run
    session.commit()
    production.delete("/_emulator/requests")

    # The deployment now serves sandbox only: the production connection's run must not call anyone.
    result = provision(run.id, settings)

    assert result["status"] == RunStatus.CANCELLED
    assert "no longer serves" in result["error"]
    session.expire_all()
    assert live.status == IntegrationStatus.READY and live.access_token  # untouched
    assert requests_of(production) == [] and requests_of(control) == []
    modes = environments_overview(session, settings, owner.workspace_id)
    assert [(m["environment"], m["served"]) for m in modes] == [("sandbox", True), ("production", False)]
    # Disconnecting it forgets the tokens here without sending them anywhere.
    assert disconnect(session, settings, owner.workspace_id, environment="production")
    session.commit()
    assert live.access_token is None and live.status == IntegrationStatus.NOT_CONNECTED
    assert requests_of(production) == [] and requests_of(control) == []


def test_going_live_provisions_the_catalog_revision_the_sandbox_has(
    session, both, owner, production, tmp_path: Path
):
    sandbox = connect_to(session, both, owner, "sandbox")
    provision(runs.latest(session, sandbox.id).id, both)
    session.expire_all()
    tried = load_catalog(both.plans_file)
    assert sandbox.catalog_revision == tried.revision

    # The running catalog changes (a plan added) before the owner goes live.
    changed = tmp_path / "plans.toml"
    changed.write_text(
        tried.text
        + '\n[[plans]]\nid = "team"\nname = "Team"\ninterval = "month"\n'
        + 'price = { type = "fixed", amount = 9900, currency = "usd" }\n'
    )
    newer = both.model_copy(update={"plans_file": changed})
    assert load_catalog(changed).revision != tried.revision

    live = connect_to(session, newer, owner, "production")
    run = runs.latest(session, live.id)
    assert run.catalog_revision == tried.revision
    assert provision(run.id, newer)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    assert live.catalog_revision == tried.revision
    assert {m.plan_id for m in live.product_mappings} == {p.id for p in tried.plans}
