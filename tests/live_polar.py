"""A second local Polar playing Polar's production server ("live mode"), beside the default
emulator playing the sandbox: separate users, organizations, tokens and OAuth client, as at Polar.
Import the fixtures into a test module to use them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from polar_emulator import EmulatorConfig, EmulatorServer

from tests.factories import TEST_RATE_LIMIT

PRODUCTION_CALLBACK = "http://127.0.0.1:5000/polar/callback/production"


@dataclass(frozen=True)
class LivePolar:
    control: httpx.Client
    url: str
    client_id: str
    client_secret: str
    redirect_uri: str = PRODUCTION_CALLBACK

    def env(self) -> dict[str, str]:
        """The variables a deployment serving both environments sets for production."""
        return {
            "POLAR_PRODUCTION_API_URL": self.url,
            "POLAR_PRODUCTION_WEB_URL": self.url,
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": self.client_id,
            "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": self.client_secret,
            "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": self.redirect_uri,
            "POLAR_PRODUCTION_RATE_LIMIT_PER_MINUTE": str(TEST_RATE_LIMIT),
        }

    def requests(self) -> list[dict]:
        return self.control.get("/_emulator/requests").json()


@pytest.fixture(scope="session")
def production_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(webhook_retry_scale=0.001, webhook_timeout=2.0)).start()
    yield server
    server.stop()


@pytest.fixture
def live_polar(production_server: EmulatorServer) -> Iterator[LivePolar]:
    """The production Polar, reset, with our live OAuth client registered."""
    with httpx.Client(base_url=production_server.url, timeout=10) as control:
        control.post("/_emulator/reset").raise_for_status()
        created = control.post(
            "/_emulator/clients",
            json={"name": "Connect Polar (live)", "redirect_uris": [PRODUCTION_CALLBACK]},
        ).json()
        yield LivePolar(control, production_server.url, created["client_id"], created["client_secret"])
