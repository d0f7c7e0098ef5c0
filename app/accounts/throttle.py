"""Failed sign-ins are counted in Redis per email address and per client address; too many of
either lock it for a while. Per email, against guessing one account's password; per client address,
against one client trying many accounts (and enumerating them through sign-up).

A success clears the email's count, never the address's: signing in to one's own account between
guesses must not reset the client's budget.

Fails open: if Redis does not answer, sign-in still works (and the failure is logged), because
locking every user out is worse than a brute-force window during an outage.
"""

from __future__ import annotations

import enum
import hashlib
import logging

import redis

log = logging.getLogger(__name__)
MAX_FAILURES = 10  # per email address
MAX_FAILURES_PER_ADDRESS = 30  # per client address, over any emails
WINDOW_SECONDS = 15 * 60


class Blocked(enum.Enum):
    EMAIL = "email"
    ADDRESS = "address"


class LoginThrottle:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)

    @staticmethod
    def _key(email: str) -> str:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"connect-polar:login-failures:{digest}"

    @staticmethod
    def _address_key(address: str | None) -> str:
        digest = hashlib.sha256((address or "unknown").encode()).hexdigest()
        return f"connect-polar:login-failures-by-address:{digest}"

    def blocked(self, email: str, address: str | None = None) -> Blocked | None:
        """Whether sign-ins for ``email`` or from ``address`` are locked now (and which)."""
        try:
            by_email, by_address = self._redis.mget(self._key(email), self._address_key(address))
        except redis.exceptions.RedisError as exc:
            log.warning("login throttle unavailable (%s)", type(exc).__name__)
            return None
        if int(by_address or 0) >= MAX_FAILURES_PER_ADDRESS:
            return Blocked.ADDRESS
        if int(by_email or 0) >= MAX_FAILURES:
            return Blocked.EMAIL
        return None

    def failed(self, email: str | None, address: str | None = None) -> None:
        """Count a failure for ``email`` (if any) and for ``address``."""
        keys = [self._address_key(address)] + ([self._key(email)] if email is not None else [])
        try:
            with self._redis.pipeline() as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS, nx=True)
                pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.warning("login throttle unavailable (%s)", type(exc).__name__)

    def succeeded(self, email: str) -> None:
        try:
            self._redis.delete(self._key(email))
        except redis.exceptions.RedisError as exc:
            log.warning("login throttle unavailable (%s)", type(exc).__name__)
