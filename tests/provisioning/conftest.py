"""Fixtures for the domain: settings pointing at the emulator, real rows, the real OAuth code flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from cryptography.fernet import Fernet
from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun
from tests import factories
from tests.factories import TEST_RATE_LIMIT, Owner
from tests.live_polar import live_polar, production_server  # noqa: F401  (fixtures)

# Port 9 (discard) refuses connections at once: the emulator's deliveries to it just fail.
PUBLIC_BASE_URL = "http://127.0.0.1:9"


@pytest.fixture
def settings(emulator: EmulatorServer, redis_url: str) -> Settings:
    return Settings(
        env="test",
        redis_url=redis_url,
        secret_key="test-secret-key-0123456789abcdef0123456789",
        public_base_url=PUBLIC_BASE_URL,
        polar_server="sandbox",
        polar_api_url=emulator.url,
        polar_web_url=emulator.url,
        polar_oauth_client_id=DEMO_CLIENT_ID,
        polar_oauth_client_secret=DEMO_CLIENT_SECRET,
        polar_oauth_redirect_uri=DEMO_REDIRECT_URI,
        token_encryption_keys=[Fernet.generate_key()],
        polar_rate_limit_per_minute=TEST_RATE_LIMIT,
    )


@pytest.fixture
def make_owner(session: Session) -> Callable[..., Owner]:
    def make(name: str = "Acme Workspace", email: str | None = None) -> Owner:
        owner = factories.make_owner(session, name, email=email)
        session.commit()
        return owner

    return make


@pytest.fixture
def owner(make_owner: Callable[..., Owner]) -> Owner:
    return make_owner()


def consent(
    authorize_url: str,
    *,
    user: str = "demo@polar.local",
    organizations: list[str] | None = None,
    scope: str | None = None,
) -> tuple[str, str]:
    """Play the owner on the emulator's consent page; returns (code, state) from the redirect."""
    parsed = urlparse(authorize_url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    if scope is not None:
        query["scope"] = scope
    form: list[tuple[str, str]] = [*query.items(), ("user", user), ("action", "allow")]
    form += [("organizations", o) for o in organizations or []]
    base = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
    response = httpx.post(
        base,
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
        timeout=10,
    )
    assert response.status_code in (302, 303), response.text
    location = parse_qs(urlparse(response.headers["location"]).query)
    assert "code" in location, response.headers["location"]
    return location["code"][0], location["state"][0]


@dataclass
class Connected:
    owner: Owner
    integration: PolarIntegration
    run: ProvisioningRun | None


@pytest.fixture
def connect(session: Session, settings: Settings, owner: Owner) -> Callable[..., Connected]:
    """The real connect flow against the emulator, committed like the web callback does."""

    def run_flow(user: str = "demo@polar.local", *, who: Owner | None = None, **kw: object) -> Connected:
        who = who or owner
        start = begin_connect(session, settings, workspace_id=who.workspace_id, user_id=who.user_id)
        session.commit()
        code, state = consent(start.authorize_url, user=user, **kw)  # type: ignore[arg-type]
        integration = complete_connect(
            session, settings, state=state, code=code, user_id=who.user_id, browser_nonce=start.nonce
        )
        session.commit()
        runs = sorted(
            session.query(ProvisioningRun).filter_by(integration_id=integration.id),
            key=lambda r: r.created_at,
        )
        return Connected(who, integration, runs[-1] if runs else None)

    return run_flow


def polar_requests(control: httpx.Client) -> list[dict]:
    return control.get("/_emulator/requests").json()


def writes(control: httpx.Client) -> list[dict]:
    return [
        r
        for r in polar_requests(control)
        if r["method"] in ("POST", "PATCH", "DELETE", "PUT")
        and r["path"].startswith("/v1/")
        and not r["path"].startswith("/v1/oauth2/")
    ]
