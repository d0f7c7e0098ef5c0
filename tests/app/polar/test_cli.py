"""``flask provision``, ``flask plans check`` and ``flask plans diff``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.accounts.models import User, Workspace
from provisioning.config import ConfigError, Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun
from tests.app.conftest import Accounts
from tests.app.polar.conftest import consent, run_jobs, start_connect, status

BAD_CATALOG = """
[[plans]]
id = "pro"
name = "Pro"
interval = "fortnight"
prices = [{ type = "fixed", amount = 1000, currency = "usd" }]
"""


def test_plans_check_accepts_the_default_catalog(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["plans", "check"])
    assert result.exit_code == 0, result.output
    assert "plans, revision" in result.output


def test_plans_check_names_the_plan_and_field(app: Flask, tmp_path: Path) -> None:
    bad = tmp_path / "plans.toml"
    bad.write_text(BAD_CATALOG)
    result = app.test_cli_runner().invoke(args=["plans", "check", str(bad)])
    assert result.exit_code == 1
    assert "plan 'pro'" in result.output and "interval" in result.output


def test_a_bad_catalog_stops_start_up(settings: Settings, database: Database, tmp_path: Path) -> None:

    bad = tmp_path / "plans.toml"
    bad.write_text(BAD_CATALOG)
    with pytest.raises(ConfigError, match="PLANS_FILE.*plan 'pro'"):
        create_app(settings.model_copy(update={"plans_file": bad}), database=database)


def test_provision_needs_a_connection(app: Flask, workspace: Workspace) -> None:
    result = app.test_cli_runner().invoke(args=["provision", workspace.id])
    assert result.exit_code == 1
    assert "no Polar connection" in result.output


def test_provision_queues_a_cli_run_that_a_worker_finishes(
    app: Flask,
    owner_client: FlaskClient,
    workspace: Workspace,
    session: Session,
    settings: Settings,
    redis_url: str,
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    run_jobs(redis_url, settings)
    assert status(owner_client, workspace.id)["status"] == "ready"

    result = app.test_cli_runner().invoke(args=["provision", workspace.id])
    assert result.exit_code == 0, result.output
    run_id = result.output.split()[1]
    run = session.get(ProvisioningRun, run_id)
    assert run is not None and run.trigger == "cli" and run.status == "queued"

    again = app.test_cli_runner().invoke(args=["provision", workspace.id])
    assert again.exit_code == 1 and f"run {run_id} is already under way" in again.output

    run_jobs(redis_url, settings)
    session.expire_all()
    assert session.scalar(select(ProvisioningRun.status).where(ProvisioningRun.id == run_id)) == "succeeded"
    assert status(owner_client, workspace.id)["status"] == "ready"


def test_plans_diff_on_a_provisioned_workspace_changes_nothing(
    app: Flask, owner_client: FlaskClient, workspace: Workspace, settings: Settings, redis_url: str
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    run_jobs(redis_url, settings)
    result = app.test_cli_runner().invoke(args=["plans", "diff", workspace.id])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_plans_diff_on_a_new_connection_lists_the_creates(
    app: Flask, owner_client: FlaskClient, workspace: Workspace
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    result = app.test_cli_runner().invoke(args=["plans", "diff", workspace.id])
    assert result.exit_code == 0, result.output
    assert "create product 'free'" in result.output


def test_plans_diff_needs_a_connection(app: Flask, workspace: Workspace) -> None:
    result = app.test_cli_runner().invoke(args=["plans", "diff", workspace.id])
    assert result.exit_code == 1
    assert "not connected" in result.output


def test_keys_rotate_reports_what_it_re_encrypted(
    app: Flask,
    owner_client: FlaskClient,
    workspace: Workspace,
    session: Session,
    settings: Settings,
    database: Database,
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    before = session.scalar(select(PolarIntegration.access_token))
    rotated = settings.model_copy(
        update={"token_encryption_keys": [Fernet.generate_key(), *settings.token_encryption_keys]}
    )

    result = create_app(rotated, database=database).test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert "polar_integration: 1/1 rows" in result.output  # progress
    assert "polar_connect_attempt: 1/1 rows" in result.output
    assert "3 secret(s) re-encrypted with the first key, 0 already current" in result.output
    session.expire_all()
    assert session.scalar(select(PolarIntegration.access_token)) != before  # a fresh ciphertext


def test_keys_rotate_names_what_it_cannot_read_without_a_traceback(
    app: Flask, owner_client: FlaskClient, workspace: Workspace, session: Session, settings: Settings
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    integration = session.scalars(select(PolarIntegration)).one()
    integration.refresh_token = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    session.commit()

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"cannot read polar_integration.refresh_token of row {integration.id}" in result.output
    assert "1 secret(s) could not be read" in result.output
    assert "1 already current" in result.output or "2 already current" in result.output


def test_provision_with_tokens_copied_from_another_workspace_makes_no_polar_call(
    app: Flask,
    owner_client: FlaskClient,
    owner: User,
    accounts: Accounts,
    workspace: Workspace,
    session: Session,
    settings: Settings,
    redis_url: str,
    control: httpx.Client,
) -> None:
    beta = accounts.workspace("Beta", owner)
    for ws in (workspace, beta):
        owner_client.get(consent(start_connect(owner_client, ws.id)).callback_path)
    run_jobs(redis_url, settings)
    a, b = (
        session.scalars(select(PolarIntegration).filter_by(workspace_id=ws.id)).one()
        for ws in (workspace, beta)
    )
    b.access_token, b.refresh_token = a.access_token, a.refresh_token
    session.commit()
    control.delete("/_emulator/requests").raise_for_status()

    result = app.test_cli_runner().invoke(args=["provision", beta.id])
    assert result.exit_code == 0, result.output
    run_jobs(redis_url, settings)

    assert control.get("/_emulator/requests").json() == []
    shown = status(owner_client, beta.id)
    assert shown["status"] == "needs_reconnect"
    assert "failed its integrity check" in shown["last_error"] and "Reconnect Polar" in shown["last_error"]
    assert status(owner_client, workspace.id)["status"] == "ready"
