"""The support console's workspace page lists each connection's open drift."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from provisioning.config import Settings
from tests.app.conftest import Accounts, login
from tests.app.polar.conftest import connect_and_provision
from tests.app.polar.test_drift import RENAMED, integration_of, rename_at_polar


@pytest.fixture
def staff_client(app: Flask, accounts: Accounts) -> Iterator[FlaskClient]:
    staff = accounts.user("support@example.com", staff=True)
    client = app.test_client()
    login(client, staff.email)
    yield client


def test_staff_see_a_connections_open_drift(
    app: Flask,
    owner: User,
    workspace: Workspace,
    session: Session,
    settings: Settings,
    control: httpx.Client,
    staff_client: FlaskClient,
) -> None:
    owner_client = app.test_client()
    login(owner_client, owner.email)
    connect_and_provision(owner_client, workspace.id, settings)
    page = f"/admin/workspaces/{workspace.id}"
    assert "None open" in staff_client.get(page).get_data(as_text=True)

    # Recorded only (report), so the drift stays open while staff look.
    rename_at_polar(
        session, settings.model_copy(update={"polar_drift_policy": "report"}), control, workspace.id
    )

    html = staff_client.get(page).get_data(as_text=True)
    integration = integration_of(session, workspace.id)
    product_id = next(m.polar_product_id for m in integration.product_mappings if m.plan_id == "pro-monthly")
    assert "open: 1" in html
    assert RENAMED in html
    assert f'<code>pro-monthly</code> <code class="muted">{product_id}</code>' in html
    assert "<code>name</code>" in html
