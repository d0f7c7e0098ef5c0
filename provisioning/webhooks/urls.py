"""Where Polar delivers a connection's webhook events."""

from __future__ import annotations

from provisioning.config import Settings
from provisioning.integrations.models import PolarIntegration


def webhook_url(settings: Settings, integration: PolarIntegration) -> str:
    """Our receiver, at an unguessable path per connection (the signature authenticates)."""
    return f"{settings.public_base_url}/polar/webhooks/{integration.webhook_path_token}"
