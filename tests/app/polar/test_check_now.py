"""The owner's "Check now": the monitor's check on demand, its result on the billing page."""

from __future__ import annotations

from flask.testing import FlaskClient

from app.accounts.models import Workspace
from provisioning.config import Settings
from tests.app.conftest import csrf_token
from tests.app.polar.conftest import consent, run_jobs, start_connect


def test_check_now_shows_what_it_found(
    owner_client: FlaskClient, workspace: Workspace, settings: Settings, redis_url: str, control
) -> None:
    page = f"/workspaces/{workspace.id}/polar"
    assert "Check now" not in owner_client.get(page).get_data(as_text=True)  # nothing to check yet
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    run_jobs(redis_url, settings)
    body = owner_client.get(page).get_data(as_text=True)
    assert "not checked yet" in body and "Check now" in body

    answer = owner_client.post(f"{page}/check", data={"csrf_token": csrf_token(owner_client, page)})
    assert answer.status_code == 303
    body = owner_client.get(page).get_data(as_text=True)
    assert "the connection and its webhook endpoint are in order" in body
    assert "all well" in body and "enabled" in body

    control.post("/_emulator/tokens/revoke-user", json={"email": "demo@polar.local"}).raise_for_status()
    owner_client.post(f"{page}/check", data={"csrf_token": csrf_token(owner_client, page)})
    body = owner_client.get(page).get_data(as_text=True)
    assert "grant revoked" in body and "Reconnect needed" in body
    assert owner_client.post(f"{page}/check", data={}).status_code == 400  # no CSRF token
