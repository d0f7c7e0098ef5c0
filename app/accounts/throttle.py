"""Failed sign-ins are counted per email address in Redis; too many lock the address for a while.

Fails open: if Redis does not answer, sign-in still works (and the failure is logged), because
locking every user out is worse than a brute-force window during an outage.
"""

from __future__ import annotations

import hashlib
import logging

import redis

log = logging.getLogger(__name__)
MAX_FAILURES = 10
WINDOW_SECONDS = 15 * 60


class LoginThrottle:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)

    @staticmethod
    def _key(email: str) -> str:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"connect-polar:login-failures:{digest}"

    def blocked(self, email: str) -> bool:
        try:
            return int(self._redis.get(self._key(email)) or 0) >= MAX_FAILURES
        except redis.exceptions.RedisError as exc:
            log.warning("login throttle unavailable (%s)", type(exc).__name__)
            return False

    def failed(self, email: str) -> None:
        key = self._key(email)
        try:
            with self._redis.pipeline() as pipe:
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
