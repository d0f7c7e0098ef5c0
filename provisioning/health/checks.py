"""Checking a connection now: is the grant alive with the scopes we need, and is our webhook
endpoint at Polar where and how it should be. Reads only; the caller records the result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.catalog.model import RUNTIME_SCOPES
from provisioning.config import Settings
from provisioning.errors import ConnectPolarError
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.tokens import REFRESH_MARGIN, fresh_access_token
from provisioning.polar.client import PolarApi
from provisioning.polar.oauth import PolarOAuth
from provisioning.reconcile.webhook import WEBHOOK_EVENTS
from provisioning.webhooks.urls import webhook_url


@dataclass
class HealthCheck:
    ok: bool = False
    grant_active: bool | None = None
    missing_scopes: list[str] = field(default_factory=list)
    organization_reachable: bool | None = None
    endpoint: str = "unknown"  # present | disabled | different | missing | unknown
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_connection(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    catalog: Catalog,
    *,
    refresh_within: timedelta = REFRESH_MARGIN,
) -> HealthCheck:
    result = HealthCheck()
    if not integration.access_token:
        result.problems.append("not connected")
        return result
    try:
        token = fresh_access_token(session, settings, integration, margin=refresh_within)
        endpoints = settings.polar(integration.environment)
        intro = PolarOAuth(endpoints).introspect(token)
        result.grant_active = intro.active
        if not intro.active:
            result.problems.append("Polar reports the access token inactive: the grant was revoked")
            return result
        missing = [s for s in catalog.required_scopes() if s not in intro.scopes]
        # Provisioning cannot work without its scopes (the connection must be reconnected); the
        # tenant API's are a permissions upgrade: reported, and its calls answer 409, while
        # provisioning and the rest of the API go on.
        result.missing_scopes = [s for s in missing if s not in RUNTIME_SCOPES]
        upgrade = [s for s in missing if s in RUNTIME_SCOPES]
        if result.missing_scopes:
            result.problems.append("scopes missing: " + ", ".join(result.missing_scopes))
        if upgrade:
            result.problems.append("permissions upgrade: reconnect Polar to grant " + ", ".join(upgrade))
        if integration.polar_org_id and intro.organization_ids:
            result.organization_reachable = integration.polar_org_id in intro.organization_ids
            if not result.organization_reachable:
                result.problems.append("the grant no longer reaches the organization")
        elif integration.polar_org_id:
            result.organization_reachable = True  # an empty list means all of the user's organizations
        _check_endpoint(PolarApi(endpoints.api_url, token), settings, integration, result)
    except ConnectPolarError as exc:
        result.problems.append(str(exc))
    result.ok = not result.problems
    return result


def _check_endpoint(
    api: PolarApi, settings: Settings, integration: PolarIntegration, result: HealthCheck
) -> None:
    if not integration.webhook_endpoint_id:
        result.endpoint = "missing"
        result.problems.append("no webhook endpoint is recorded for this connection")
        return
    try:
        hook = api.read(
            api.sdk.webhooks.get_webhook_endpoint,
            integration.webhook_endpoint_id,
            action="read the webhook endpoint",
            scope="webhooks:read",
        )
    except ConnectPolarError as exc:
        if getattr(exc, "status", None) == 404:
            result.endpoint = "missing"
            result.problems.append("the webhook endpoint was deleted at Polar")
            return
        raise
    if not hook.enabled:
        result.endpoint = "disabled"
        result.problems.append("Polar disabled the webhook endpoint")
    elif hook.url != webhook_url(settings, integration) or not set(WEBHOOK_EVENTS) <= {
        str(e) for e in hook.events
    }:
        result.endpoint = "different"
        result.problems.append("the webhook endpoint's URL or events differ from what we set")
    else:
        result.endpoint = "present"
