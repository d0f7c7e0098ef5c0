"""Keeping the access token fresh, and the per-integration lock that guards the token pair.

Polar rotates refresh tokens and a refresh kills the old pair at once, so two concurrent refreshes
would leave the loser with ``invalid_grant`` and a dead token. Every writer of an integration's
token pair therefore holds one Redis lock per integration (``connect-polar:token-refresh:{id}``):
the refresh here, ``disconnect`` and the reconnect in ``complete_connect``. Under the lock the
refresh re-reads the row (another worker may have refreshed already), and it writes the new pair in
its own short transaction, only if the row still holds the refresh token it used (a disconnect or a
reconnect that got in anyway wins; the orphaned new pair is revoked). Then the caller's object is
refreshed, so the caller's own transaction is never committed for it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any, NoReturn

import redis
from redis.lock import Lock
from sqlalchemy import event
from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.db import get_database, utcnow
from provisioning.integrations import repository
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token, decrypt_secret, secret_slot, vault_for
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import (
    PolarOAuthError,
    ProvisioningError,
    RefreshUnanswered,
    TransientPolarError,
)
from provisioning.polar.oauth import PolarOAuth, TokenSet

log = logging.getLogger(__name__)
REFRESH_MARGIN = timedelta(minutes=5)
LOCK_TIMEOUT = 60  # seconds: a refresh is one token-endpoint call (10 s timeout) and two short writes
LOCK_WAIT = 30
# The columns a refresh writes: what the caller's object gets back afterwards.
TOKEN_COLUMNS = (
    "access_token",
    "refresh_token",
    "token_expires_at",
    "scopes",
    "status",
    "last_error",
    "token_refresh_unanswered_at",
)
# OAuth errors that mean our client credentials are wrong, not the owner's grant.
CLIENT_ERRORS = ("invalid_client", "unauthorized_client")


class OAuthClientConfigError(ProvisioningError):
    """Polar rejected our OAuth client itself: an operator must fix POLAR_OAUTH_CLIENT_ID/SECRET."""


def refresh_lock_name(integration_id: str) -> str:
    return f"connect-polar:token-refresh:{integration_id}"


def token_lock(conn: redis.Redis, integration_id: str) -> Lock:
    return conn.lock(refresh_lock_name(integration_id), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)


_HELD_KEY = "connect_polar_token_locks"


def lock_tokens_until_transaction_ends(
    session: Session,
    settings: Settings,
    integration_id: str,
    *,
    redis_conn: redis.Redis | None = None,
    wait: float = LOCK_WAIT,
) -> bool:
    """Take the integration's token lock and hold it until ``session``'s outermost transaction ends.

    For services that write the token pair and leave the commit to their caller (disconnect,
    reconnect): no refresh can read the old pair or write a new one until the change is committed
    or rolled back. Taking it again in the same transaction is a no-op.

    Best effort, returns whether the lock is held: if Redis is down or a refresh holds the lock
    for ``wait`` seconds, the caller goes on (an owner must be able to disconnect). That is still
    safe, only less tidy: a refresh writes its new pair only over the refresh token it read, and
    revokes the pair it could not store.
    """
    held: dict[str, Lock] = session.info.setdefault(_HELD_KEY, {})
    if integration_id in held:
        return True
    try:
        conn = redis_conn or redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        lock = conn.lock(refresh_lock_name(integration_id), timeout=LOCK_TIMEOUT, blocking_timeout=wait)
        acquired = lock.acquire()
    except redis.exceptions.RedisError as exc:
        log.warning(
            "token lock of integration %s unavailable (%s); going on", integration_id, type(exc).__name__
        )
        return False
    if not acquired:
        log.warning("token lock of integration %s still taken after %ss; going on", integration_id, wait)
        return False
    held[integration_id] = lock
    if not event.contains(session, "after_transaction_end", _release_held):
        event.listen(session, "after_transaction_end", _release_held)
    return True


def _release_held(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:  # a savepoint or subtransaction: keep holding
        return
    for lock in session.info.pop(_HELD_KEY, {}).values():
        with contextlib.suppress(redis.exceptions.RedisError):
            lock.release()


def needs_refresh(integration: PolarIntegration, margin: timedelta = REFRESH_MARGIN) -> bool:
    expires = integration.token_expires_at
    return expires is not None and expires - utcnow() < margin


def fresh_access_token(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    *,
    redis_conn: redis.Redis | None = None,
    margin: timedelta = REFRESH_MARGIN,
) -> str:
    """The integration's access token, refreshed first if it expires within ``margin`` (5 minutes;
    the health monitor refreshes a day ahead).

    A refresh writes the new pair in its own short transaction (the new refresh token must never be
    lost) and then reloads the token columns of ``integration``; ``session``'s transaction is left
    alone. The caller must not hold uncommitted writes to the integration's row (they would block
    that short transaction).
    """
    if not needs_refresh(integration, margin):
        return access_token(settings, integration)
    conn = redis_conn or redis.Redis.from_url(settings.redis_url)
    lock = token_lock(conn, integration.id)
    if not lock.acquire():
        raise TransientPolarError("another worker is refreshing this workspace's Polar token; will retry")
    try:
        # Re-read under the lock: another worker may have refreshed, or the owner disconnected.
        session.refresh(integration, attribute_names=list(TOKEN_COLUMNS))
        if not needs_refresh(integration, margin):
            return access_token(settings, integration)
        try:
            token = _refresh_locked(settings, integration.id)
        finally:
            session.refresh(integration, attribute_names=list(TOKEN_COLUMNS))
        log.info("refreshed the Polar token of integration %s", integration.id)
        return token
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def reauthorize(
    settings: Settings, integration_id: str, rejected: str, *, redis_conn: redis.Redis | None = None
) -> str:
    """Polar answered 401 to a call made with the access token ``rejected`` (though our row may
    think it fresh): the access token to retry the call with, refreshed at most once.

    Under the token lock, the committed pair is read in its own transaction: if it no longer holds
    ``rejected`` (another process refreshed, or the owner reconnected), that token is the answer,
    with no call; otherwise the pair is refreshed as ``fresh_access_token`` does. Safe from any
    thread: it uses no caller's session.
    """
    conn = redis_conn or redis.Redis.from_url(settings.redis_url)
    lock = token_lock(conn, integration_id)
    if not lock.acquire():
        raise TransientPolarError("another worker is refreshing this workspace's Polar token; will retry")
    try:
        current = _stored_access_token(settings, integration_id)
        if current != rejected:
            log.info(
                "integration %s: Polar rejected a token already replaced; using the stored one",
                integration_id,
            )
            return current
        token = _refresh_locked(settings, integration_id)
        log.info("refreshed the Polar token of integration %s after Polar rejected it", integration_id)
        return token
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


LOST_ANSWER = (
    "Polar did not answer our request to renew this connection's access (no response in time). "
    "If Polar renewed it anyway, the new key was lost with the answer"
)
LOST_GRANT = (
    "Polar's answer to our request to renew this connection's access was lost, and Polar had "
    "already replaced the key we hold, so this connection can no longer reach Polar"
)


def _stored_access_token(settings: Settings, integration_id: str) -> str:
    with get_database().transaction() as tx:
        row = repository.token_row(tx, integration_id)
    if row is None or not row.access_token:
        raise ProvisioningError("Polar was disconnected from this workspace", needs_reconnect=True)
    return decrypt_secret(settings, integration_id, "access_token", row.access_token)


def _refresh_locked(settings: Settings, integration_id: str) -> str:
    """Refresh the committed pair (the caller holds the token lock); returns the new access token.

    Only ``invalid_grant`` for the refresh token still stored means "reconnect": when the row holds
    another pair by then (a sibling refreshed first, e.g. after its lock lapsed), that pair is used.
    A refresh whose answer is lost is remembered on the row (``token_refresh_unanswered_at``) and
    said in ``last_error``; the job retries, and should Polar have rotated meanwhile, the
    ``invalid_grant`` that follows says so instead of a bare refusal.
    """
    with get_database().transaction() as tx:
        row = repository.token_row(tx, integration_id)
    if row is None or not row.access_token:
        raise ProvisioningError("Polar was disconnected from this workspace", needs_reconnect=True)
    read_ciphertext = row.refresh_token
    if not read_ciphertext:
        _needs_reconnect(integration_id, None, "the Polar connection has no refresh token")
    # Before any call: a refresh token moved here from another row raises SecretIntegrityError.
    refresh = decrypt_secret(settings, integration_id, "refresh_token", read_ciphertext)
    oauth = PolarOAuth(settings.polar(row.environment))
    try:
        tokens = oauth.refresh(refresh)
    except RefreshUnanswered as exc:
        log.error("integration %s: a token refresh got no answer from Polar (%s)", integration_id, exc)
        with get_database().transaction() as tx:
            repository.mark_refresh_unanswered_if_unchanged(
                tx, integration_id, read_ciphertext, f"{LOST_ANSWER}; retrying"
            )
        raise TransientPolarError(f"{LOST_ANSWER}; will retry", status=exc.status) from None
    except PolarOAuthError as exc:
        if exc.error == "invalid_grant":
            with get_database().transaction() as tx:
                now = repository.token_row(tx, integration_id)
            if now is not None and now.access_token and now.refresh_token != read_ciphertext:
                # Not our grant dying: another process stored a newer pair first. Use it.
                log.warning(
                    "integration %s: refresh lost a race to another process; using its pair", integration_id
                )
                return decrypt_secret(settings, integration_id, "access_token", now.access_token)
            if row.refresh_unanswered:
                log.error("integration %s: %s", integration_id, LOST_GRANT)
                _needs_reconnect(integration_id, read_ciphertext, LOST_GRANT)
            _needs_reconnect(
                integration_id, read_ciphertext, f"Polar refused to refresh the token ({exc.error})"
            )
        if exc.error in CLIENT_ERRORS:
            # Our OAuth client is misconfigured: every workspace would fail the same way, and no
            # owner can fix it by reconnecting. Leave the integration's status alone.
            log.error(
                "Polar rejected our OAuth client (%s) while refreshing integration %s: check "
                "POLAR_OAUTH_CLIENT_ID and POLAR_OAUTH_CLIENT_SECRET",
                exc.error,
                integration_id,
            )
            raise OAuthClientConfigError(
                f"Polar rejected this application's OAuth client ({exc.error}); the operator must "
                "check POLAR_OAUTH_CLIENT_ID and POLAR_OAUTH_CLIENT_SECRET. Nothing to do on "
                "your side: this is retried once it is fixed"
            ) from None
        raise ProvisioningError(f"Polar refused to refresh the access token ({exc.error})") from None
    if not _store_refreshed(
        settings, integration_id, read_ciphertext, tokens, clear_error=row.refresh_unanswered
    ):
        _revoke_quietly(settings, row.environment, tokens)
        raise TransientPolarError("the Polar connection changed while its token was refreshed; will retry")
    return tokens.access_token


def _store_refreshed(
    settings: Settings, integration_id: str, read_ciphertext: str, tokens: TokenSet, *, clear_error: bool
) -> bool:
    """Write the new pair, only over the refresh token it replaces. Its own transaction.
    ``clear_error``: the row said a refresh went unanswered; this one was answered."""
    vault = vault_for(settings)
    values: dict[str, Any] = {
        "access_token": vault.encrypt(secret_slot(integration_id, "access_token"), tokens.access_token),
        "token_expires_at": tokens.expires_at,
    }
    if tokens.refresh_token:  # Polar rotates; keep the old one only if none was returned
        values["refresh_token"] = vault.encrypt(
            secret_slot(integration_id, "refresh_token"), tokens.refresh_token
        )
    if tokens.scope:
        values["scopes"] = tokens.scope
    values["token_refresh_unanswered_at"] = None
    if clear_error:
        values["last_error"] = None
    with get_database().transaction() as tx:
        return repository.replace_tokens_if_unchanged(tx, integration_id, read_ciphertext, values)


def _needs_reconnect(integration_id: str, read_ciphertext: str | None, why: str) -> NoReturn:
    """Mark the integration needs_reconnect (its own transaction, only if the pair is still the one
    that failed) and raise."""
    message = f"{why}: reconnect Polar from the billing page"
    with get_database().transaction() as tx:
        repository.mark_needs_reconnect_if_unchanged(tx, integration_id, read_ciphertext, message)
    raise ProvisioningError(message, needs_reconnect=True)


def _revoke_quietly(settings: Settings, environment: str, tokens: TokenSet) -> None:
    try:
        PolarOAuth(settings.polar(environment)).revoke(tokens.refresh_token or tokens.access_token)
    except Exception as exc:
        log.warning("could not revoke an orphaned Polar token pair: %s", type(exc).__name__)


def current_refresh_token(session: Session, settings: Settings, integration_id: str) -> str | None:
    """The integration's refresh token as committed now (read it under the token lock). A refresh
    token moved here from another row raises SecretIntegrityError."""
    ciphertext = repository.refresh_token_ciphertext(session, integration_id)
    return decrypt_secret(settings, integration_id, "refresh_token", ciphertext) if ciphertext else None


def polar_api(
    session: Session, settings: Settings, integration: PolarIntegration, **options: Any
) -> PolarApi:
    """A Polar client for the connection: its access token (refreshed first if it expires soon),
    and after a 401 the token :func:`reauthorize` gives. ``options``: :class:`PolarApi`'s."""
    token = fresh_access_token(session, settings, integration)
    integration_id = integration.id
    return PolarApi(
        settings.polar(integration.environment).api_url,
        token,
        reauthorize=lambda rejected: reauthorize(settings, integration_id, rejected),
        **options,
    )
