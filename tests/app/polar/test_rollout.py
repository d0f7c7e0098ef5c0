"""``flask plans rollout``: a catalog change reaches every ready connection, once, resumably."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.catalog import load_catalog
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun, RunBatch, RunStatus
from tests.app.conftest import make_app
from tests.app.polar.conftest import consent, run_jobs, start_connect


def _newer_catalog(settings: Settings, tmp_path: Path) -> Settings:
    text = load_catalog(settings.plans_file).text
    changed = tmp_path / "plans.toml"
    changed.write_text(
        text + '\n[[plans]]\nid = "team"\nname = "Team"\ninterval = "month"\n'
        'price = { type = "fixed", amount = 9900, currency = "usd" }\n'
    )
    return settings.model_copy(update={"plans_file": changed})


def test_a_rollout_provisions_every_connection_behind_once(
    owner_client: FlaskClient,
    workspace: Workspace,
    settings: Settings,
    database: Database,
    session: Session,
    redis_url: str,
    tmp_path: Path,
    monkeypatch,
) -> None:
    owner_client.get(consent(start_connect(owner_client, workspace.id)).callback_path)
    run_jobs(redis_url, settings)
    newer = _newer_catalog(settings, tmp_path)
    monkeypatch.setenv("PLANS_FILE", str(newer.plans_file))  # the in-process worker reads it too
    cli = make_app(newer, database).test_cli_runner()

    dry = cli.invoke(args=["plans", "rollout", "--dry-run"])
    assert dry.exit_code == 0 and "1 connection(s) would be provisioned" in dry.output
    assert session.scalar(sa.select(sa.func.count()).select_from(RunBatch)) == 0

    first = cli.invoke(args=["plans", "rollout", "--no-wait"])
    again = cli.invoke(args=["plans", "rollout", "--no-wait"])  # resumed while the run waits
    assert first.exit_code == 0 and "1 run(s) queued" in first.output, first.output
    assert again.exit_code == 0 and "0 run(s) queued, 1 already under way" in again.output, again.output
    session.expire_all()
    rollout_runs = list(
        session.scalars(sa.select(ProvisioningRun).where(ProvisioningRun.trigger == "rollout"))
    )
    assert len(rollout_runs) == 1 and rollout_runs[0].status == RunStatus.QUEUED

    run_jobs(redis_url, newer)

    session.expire_all()
    integration = session.scalar(
        sa.select(PolarIntegration).where(PolarIntegration.workspace_id == workspace.id)
    )
    assert integration.catalog_revision == load_catalog(newer.plans_file).revision
    assert "team" in {m.plan_id for m in integration.product_mappings}
    done = cli.invoke(args=["plans", "rollout", "--environment", "sandbox"])
    assert done.exit_code == 0 and "nothing to roll out" in done.output
