"""Each API key's rate limit, in Redis, shared by every web process: a token bucket per key
(one Lua script, stamped with Redis's clock, so the decision is atomic). A key may burst up to its
minute's worth of calls at once, then gets one call per ``60 / per_minute`` seconds.

Fails open, like the sign-in throttle: with Redis unreachable, calls are served (and the failure
logged), because refusing every tenant during an outage is worse than an unpaced minute.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)
DEFAULT_PER_MINUTE = 600
KEY_PREFIX = "connect-polar:api-key-rate:"

# KEYS[1] the bucket; ARGV[1] capacity (calls a minute), ARGV[2] refill per second.
# Returns {allowed (0 or 1), seconds until the next call is allowed, calls left} (strings: Lua
# numbers would be truncated to integers on the way out).
_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait), tostring(math.floor(tokens))}
"""


# The same bucket, read without taking from it: {allowed, seconds until one call is}.
_PEEK = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then return {1, '0'} end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
if tokens >= 1 then return {1, '0'} end
return {0, tostring((1 - tokens) / rate)}
"""
# Refused keys an address may send a minute before it is refused outright (guessing keys).
FAILURES_PER_MINUTE = 30


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when refused
    remaining: int


class KeyRateLimit:
    """One per process (its Redis client holds a connection pool)."""

    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._script = self._redis.register_script(_BUCKET)
        self._peek = self._redis.register_script(_PEEK)

    def hit(self, key_id: str, per_minute: int = DEFAULT_PER_MINUTE) -> Decision:
        """Count one call of the key; whether it is allowed, and if not, when to retry."""
        per_minute = max(1, per_minute)
        try:
            allowed, wait, remaining = self._script(
                keys=[KEY_PREFIX + key_id], args=[per_minute, per_minute / 60.0]
            )
        except redis.exceptions.RedisError as exc:
            log.warning("API key rate limit unavailable (%s): call served unpaced", type(exc).__name__)
            return Decision(True, 0, per_minute)
        if int(allowed):
            return Decision(True, 0, int(float(remaining)))
        return Decision(False, max(1, math.ceil(float(wait))), 0)

    def failed(self, address: str, per_minute: int = FAILURES_PER_MINUTE) -> None:
        """One refused key from ``address``."""
        self.hit(f"failures:{address}", per_minute)

    def address_blocked(self, address: str, per_minute: int = FAILURES_PER_MINUTE) -> Decision:
        """Whether ``address`` sent too many refused keys lately: then it is refused before any
        key it sends is even looked at, so guessing keys gains nothing."""
        per_minute = max(1, per_minute)
        try:
            allowed, wait = self._peek(
                keys=[KEY_PREFIX + f"failures:{address}"], args=[per_minute, per_minute / 60.0]
            )
        except redis.exceptions.RedisError:
            return Decision(True, 0, per_minute)
        if int(allowed):
            return Decision(True, 0, per_minute)
        return Decision(False, max(1, math.ceil(float(wait))), 0)

    def close(self) -> None:
        self._redis.close()
