"""``flask provision``, ``flask plans check`` and ``flask plans diff``."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.accounts.models import Workspace
from provisioning.config import ConfigError, Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun
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
    from dataclasses import replace

    bad = tmp_path / "plans.toml"
    bad.write_text(BAD_CATALOG)
    with pytest.raises(ConfigError, match="PLANS_FILE.*plan 'pro'"):
        create_app(replace(settings, plans_file=bad), database=database)


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
    app: Flask, owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    before = session.scalar(select(PolarIntegration.access_token))

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert "re-encrypted the secrets of 1 integration(s)" in result.output
    session.expire_all()
    assert session.scalar(select(PolarIntegration.access_token)) != before  # a fresh ciphertext
