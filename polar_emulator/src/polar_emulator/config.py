"""Settings of one emulator instance."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_CLIENT_ID = "polar_ci_connectpolardemolocal0000000000000000"
DEMO_CLIENT_SECRET = "polar_cs_connectpolardemolocal0000000000000000"
DEMO_REDIRECT_URI = "http://127.0.0.1:5000/polar/callback"
DEMO_USER_EMAIL = "demo@polar.local"
MULTI_ORG_USER_EMAIL = "multi@polar.local"


@dataclass
class EmulatorConfig:
    # Refuse loopback and private webhook URLs with Polar's 422, as polar.sh does.
    strict_webhook_urls: bool = False
    # Multiplies Polar's webhook retry delays; 1.0 is Polar's schedule, tests use ~0.001.
    webhook_retry_scale: float = 1.0
    # Per-attempt delivery timeout in seconds (Polar: 10).
    webhook_timeout: float = 10.0
    # Seed the demo user, organizations and client on start and on reset.
    seed: bool = True
    demo_redirect_uris: tuple[str, ...] = (DEMO_REDIRECT_URI,)
