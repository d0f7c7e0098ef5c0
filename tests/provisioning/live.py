"""Helpers for concurrency tests: the real connect flow on ``committing_database`` (real commits on
separate connections), so threads can each use their own session."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import select

from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token, refresh_token
from provisioning.runs.models import ProvisioningRun
from tests import factories
from tests.provisioning.conftest import consent


@dataclass
class Live:
    database: Database
    settings: Settings
    workspace_id: str
    user_id: str
    integration_id: str
    run_id: str | None

    def integration(self) -> PolarIntegration:
        with self.database.transaction() as s:
            integration = s.get(PolarIntegration, self.integration_id)
            assert integration is not None
            s.expunge(integration)
            return integration

    def run(self, run_id: str | None = None) -> ProvisioningRun:
        with self.database.transaction() as s:
            run = s.get(ProvisioningRun, run_id or self.run_id)
            assert run is not None
            _ = run.steps
            s.expunge_all()
            return run

    def tokens(self) -> tuple[str | None, str | None]:
        integration = self.integration()
        at = access_token(self.settings, integration) if integration.access_token else None
        return at, refresh_token(self.settings, integration)

    def reconnect(self, user: str = "demo@polar.local") -> PolarIntegration:
        return connect_flow(self.database, self.settings, self.workspace_id, self.user_id, user=user)


def make_owner(database: Database, name: str = "Live Workspace") -> tuple[str, str]:
    with database.transaction() as s:
        owner = factories.make_owner(s, name)
        return owner.user_id, owner.workspace_id


def connect_flow(
    database: Database, settings: Settings, workspace_id: str, user_id: str, *, user: str = "demo@polar.local"
) -> PolarIntegration:
    with database.transaction() as s:
        start = begin_connect(s, settings, workspace_id=workspace_id, user_id=user_id)
    code, state = consent(start.authorize_url, user=user)
    with database.transaction() as s:
        integration = complete_connect(
            s, settings, state=state, code=code, user_id=user_id, browser_nonce=start.nonce
        )
        s.expunge(integration)
    return integration


def live_connect(database: Database, settings: Settings, name: str = "Live Workspace") -> Live:
    user_id, workspace_id = make_owner(database, name)
    integration = connect_flow(database, settings, workspace_id, user_id)
    with database.transaction() as s:
        run_id = s.scalar(
            select(ProvisioningRun.id)
            .where(ProvisioningRun.integration_id == integration.id)
            .order_by(ProvisioningRun.created_at.desc())
        )
    return Live(database, settings, workspace_id, user_id, integration.id, run_id)


def active(settings: Settings, token: str) -> bool:
    from provisioning.polar.oauth import PolarOAuth

    return PolarOAuth(settings.polar()).introspect(token).active


def wait_for_fault_hit(control: httpx.Client, path: str, hits: int = 1, timeout: float = 30.0) -> None:
    """Block until the emulator has received the faulted call (deterministic: the caller is then
    known to be inside it), with a deadline so a broken test fails instead of hanging."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        faults = [f for f in control.get("/_emulator/faults").json() if f["path"] == path]
        if faults and faults[0]["hits"] >= hits:
            return
        assert time.monotonic() < deadline, f"{path} was never called"
        time.sleep(0.01)
