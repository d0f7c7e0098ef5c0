"""Keeping the access token fresh.

Polar rotates refresh tokens and a refresh kills the old pair at once, so two concurrent refreshes
would leave the loser with ``invalid_grant`` and a dead token. Refreshes are therefore serialized
per integration with a Redis lock; the row is re-read under the lock (another worker may have
refreshed already) and the new pair is committed before it is used.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import redis
from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import access_token, refresh_token, store_tokens
from provisioning.polar.errors import PolarOAuthError, ProvisioningError
from provisioning.polar.oauth import PolarOAuth

log = logging.getLogger(__name__)
REFRESH_MARGIN = timedelta(minutes=5)


def needs_refresh(integration: PolarIntegration, margin: timedelta = REFRESH_MARGIN) -> bool:
    expires = integration.token_expires_at
    return expires is not None and expires - utcnow() < margin


def fresh_access_token(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    *,
    redis_conn: redis.Redis | None = None,
) -> str:
    """The integration's access token, refreshed first if it expires within 5 minutes.

    Commits the session when it refreshes (the new refresh token must never be lost).
    """
    if not needs_refresh(integration):
        return access_token(settings, integration)
    conn = redis_conn or redis.Redis.from_url(settings.redis_url)
    lock = conn.lock(f"connect-polar:token-refresh:{integration.id}", timeout=60, blocking_timeout=30)
    if not lock.acquire():
        from provisioning.polar.errors import TransientPolarError

        raise TransientPolarError("another worker is refreshing this workspace's Polar token; will retry")
    try:
        session.refresh(integration)  # another worker may have refreshed while we waited
        if not needs_refresh(integration):
            return access_token(settings, integration)
        current_refresh = refresh_token(settings, integration)
        if not current_refresh:
            _needs_reconnect(session, integration, "the Polar connection has no refresh token")
        try:
            tokens = PolarOAuth(settings).refresh(current_refresh)  # type: ignore[arg-type]
        except PolarOAuthError as exc:
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                _needs_reconnect(session, integration, f"Polar refused to refresh the token ({exc.error})")
            raise ProvisioningError(f"Polar refused to refresh the access token ({exc.error})") from None
        store_tokens(settings, integration, tokens)
        session.commit()
        log.info("refreshed the Polar token of integration %s", integration.id)
        return tokens.access_token
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _needs_reconnect(session: Session, integration: PolarIntegration, why: str) -> None:
    message = f"{why}: reconnect Polar from the billing page"
    integration.status = IntegrationStatus.NEEDS_RECONNECT.value
    integration.last_error = message
    session.commit()
    raise ProvisioningError(message, needs_reconnect=True)
