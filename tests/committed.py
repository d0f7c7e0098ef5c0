"""The connect flow with real commits, for tests whose other half runs elsewhere (a worker
process, the web app on a real port): those cannot see a test's savepoint."""

from __future__ import annotations

import os
import tempfile
from dataclasses import astuple, dataclass

import sqlalchemy as sa
from cryptography.fernet import Fernet
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI

from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.db import Database
from provisioning.runs.models import ProvisioningRun
from tests.factories import TEST_RATE_LIMIT, make_owner
from tests.provisioning.conftest import consent


def environ_of(settings: Settings) -> dict[str, str]:
    """The environment variables that give back ``settings`` through ``Settings.from_env``: what a
    worker (or an in-process job) reads."""
    env = {
        "APP_ENV": settings.env,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "POLAR_SERVER": settings.polar_server,
        "POLAR_API_URL": settings.polar_api_url,
        "POLAR_WEB_URL": settings.polar_web_url,
        "POLAR_OAUTH_CLIENT_ID": settings.polar_oauth_client_id,
        "POLAR_OAUTH_CLIENT_SECRET": settings.polar_oauth_client_secret,
        "POLAR_OAUTH_REDIRECT_URI": settings.polar_oauth_redirect_uri,
        "POLAR_TOKEN_ENCRYPTION_KEY": ",".join(k.decode() for k in settings.token_encryption_keys),
    }
    for other in settings.other_polar_environments:
        prefix = f"POLAR_{other.environment.name}_"
        env |= {
            f"{prefix}API_URL": other.api_url,
            f"{prefix}WEB_URL": other.web_url,
            f"{prefix}OAUTH_CLIENT_ID": other.client_id,
            f"{prefix}OAUTH_CLIENT_SECRET": other.client_secret,
            f"{prefix}OAUTH_REDIRECT_URI": other.redirect_uri,
        }
    return env


def platform_env(
    *, pg_url: str, redis_url: str, polar_url: str, public_base_url: str = "http://127.0.0.1:9"
) -> dict[str, str]:
    """The environment a worker or web process of the platform is started with."""
    return {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "committed-test-secret-key-0123456789abcdef",
        "PUBLIC_BASE_URL": public_base_url,
        "POLAR_API_URL": polar_url,
        "POLAR_WEB_URL": polar_url,
        "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
        "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "POLAR_OAUTH_REDIRECT_URI": DEMO_REDIRECT_URI,
        "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "POLAR_RATE_LIMIT_PER_MINUTE": str(TEST_RATE_LIMIT),
        # Metrics files of the process's own, never the checkout's instance/metrics.
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="connect-polar-metrics-"),
    }


@dataclass(frozen=True)
class Connected:
    user_id: str
    workspace_id: str
    integration_id: str
    run_id: str


def connect_committed(database: Database, settings: Settings, *, name: str) -> Connected:
    """An owner and workspace, then Connect Polar as demo@polar.local, each step committed."""
    slug = name.lower().replace(" ", "-")
    with database.transaction() as session:
        user_id, workspace_id = astuple(make_owner(session, name, email=f"owner@{slug}.test"))
    with database.transaction() as session:
        start = begin_connect(session, settings, workspace_id=workspace_id, user_id=user_id)
    code, state = consent(start.authorize_url)
    with database.transaction() as session:
        integration = complete_connect(
            session, settings, state=state, code=code, user_id=user_id, browser_nonce=start.nonce
        )
        run_id = session.scalar(
            sa.select(ProvisioningRun.id).where(ProvisioningRun.integration_id == integration.id)
        )
        return Connected(user_id, workspace_id, integration.id, run_id)
