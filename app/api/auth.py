"""``@api_key_required``: the tenant API's only authentication, an API key sent as
``Authorization: Bearer <key>``. No cookie or session is ever read or written.

A missing, malformed, unknown, wrong, revoked or expired key gets the same 401, so a caller learns
nothing about which; an address that sent ``FAILURES_PER_MINUTE`` of them (30) within a minute is
refused (429) whatever key it sends, a right guess included. A valid key is paced by its rate limit
(429 with ``Retry-After``; one Redis round trip checks the address and takes from the key's bucket)
and its use recorded (at most once a minute); the view finds it in ``current_key()``, and
the workspace's connection in the key's mode, read in the same statement, in ``current_connection()``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from app.api.errors import error_response
from app.database import db_session
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import ApiKey
from provisioning.api_keys.throttle import DEFAULT_PER_MINUTE, FAILURES_PER_MINUTE, KeyRateLimit
from provisioning.config import Settings
from provisioning.integrations.models import PolarIntegration
from provisioning.observability import logs

P = ParamSpec("P")
RATE_CONFIG = "API_RATE_LIMIT_PER_MINUTE"  # Flask config, not a setting: per process, for tests
FAILURES_CONFIG = "API_REFUSED_KEYS_PER_MINUTE"  # refused keys an address may send a minute
LIMITER = "connect_polar.api_rate_limit"
UNAUTHORIZED = (
    'A valid API key is required: send it as "Authorization: Bearer <key>". The workspace\'s owners '
    "create keys on its billing page."
)


def _presented_key() -> str | None:
    """The key of a well-formed ``Authorization: Bearer <key>`` header (the scheme in any case)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip(" ")
    if scheme.lower() != "bearer" or not credentials or any(c.isspace() for c in credentials):
        return None
    return credentials


def _unauthorized() -> Response:
    return error_response(401, "unauthorized", UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="api"'})


def _address_refused(retry_after: int) -> Response:
    return error_response(
        429,
        "rate_limited",
        f"Too many calls with a refused API key from this address: retry in {retry_after} s.",
        {"Retry-After": str(retry_after)},
    )


def current_key() -> ApiKey:
    key: ApiKey = g.api_key
    return key


def current_connection() -> PolarIntegration | None:
    """The key's workspace's connection in its mode (None without one), read with the key."""
    connection: PolarIntegration | None = g.api_connection
    return connection


def api_key_required(view: Callable[P, Response]) -> Callable[P, Response]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        presented = _presented_key()
        limiter: KeyRateLimit = current_app.extensions[LIMITER]
        address = request.remote_addr or "unknown"
        failures = int(current_app.config.get(FAILURES_CONFIG, FAILURES_PER_MINUTE))
        db = db_session()
        verified = api_keys.verify_with_connection(db, presented) if presented is not None else None
        if verified is None:
            db.rollback()
            refused = limiter.failed(address, failures)
            return _unauthorized() if refused.allowed else _address_refused(refused.retry_after)
        key = verified.key
        per_minute = int(current_app.config.get(RATE_CONFIG, DEFAULT_PER_MINUTE))
        decision = limiter.admit(address, key.id, per_minute, failures)
        if decision.address_blocked:
            db.rollback()
            return _address_refused(decision.retry_after)
        logs.bind(workspace_id=key.workspace_id, api_key_id=key.id)
        if not decision.allowed:
            db.rollback()
            return error_response(
                429,
                "rate_limited",
                f"This key made more than its {per_minute} calls a minute: retry in {decision.retry_after} s.",
                {"Retry-After": str(decision.retry_after)},
            )
        if api_keys.record_use(db, key):
            db.commit()  # else nothing to commit: the view goes on in the same transaction
        g.api_key = key
        g.api_connection = verified.connection
        return view(*args, **kwargs)

    return wrapper


def init_app(app: Flask, config: Settings) -> None:
    app.config.setdefault(RATE_CONFIG, DEFAULT_PER_MINUTE)
    app.config.setdefault(FAILURES_CONFIG, FAILURES_PER_MINUTE)
    app.extensions[LIMITER] = KeyRateLimit(config.redis_url)
