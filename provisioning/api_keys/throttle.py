"""Each API key's rate limit, in Redis, shared by every web process: a token bucket per key
(one Lua script, stamped with Redis's clock, so the decision is atomic). A key may burst up to its
minute's worth of calls at once, then gets one call per ``60 / per_minute`` seconds. Refused keys
are counted per address the same way: an address that sent too many is refused whatever it sends.
A call with a valid key costs one round trip (:meth:`KeyRateLimit.admit`: the address, then the key).

Fails open, like the sign-in throttle: with Redis unreachable, calls are served (and the failure
logged), because refusing every tenant during an outage is worse than an unpaced minute.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import redis

log = logging.getLogger(__name__)
DEFAULT_PER_MINUTE = 600
KEY_PREFIX = "connect-polar:api-key-rate:"

# Token buckets in Lua: ``take`` counts one call (allowed, or the seconds until one is),
# ``tokens_of`` reads a bucket without taking from it. Each bucket is a hash of its tokens and when
# they were counted, stamped with Redis's clock; the numbers go out as strings (Lua would truncate
# them).
_BUCKETS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function tokens_of(key, capacity, rate)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or at == nil then return capacity end
  return math.min(capacity, tokens + math.max(0, now - at) * rate)
end
local function take(key, capacity, rate)
  local tokens = tokens_of(key, capacity, rate)
  local allowed, wait = 0, 0
  if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
  else
    wait = (1 - tokens) / rate
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
  return {allowed, tostring(wait), tostring(math.floor(tokens))}
end
"""
# KEYS[1] a bucket; ARGV[1] its capacity (calls a minute), ARGV[2] its refill per second.
# Returns {allowed (0 or 1), seconds until the next call is allowed, calls left}.
_TAKE = _BUCKETS + "return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))"
# A key's call: KEYS[1] its address's refused-keys bucket, KEYS[2] the key's bucket, ARGV their
# capacities and refills. An address out of refused keys is refused ({0, wait, 0, 1}: nothing
# taken from the key); else one call is taken from the key's bucket ({allowed, wait, left, 0}).
_ADMIT = (
    _BUCKETS
    + """
local failures = tonumber(ARGV[1])
local failures_rate = tonumber(ARGV[2])
local left = tokens_of(KEYS[1], failures, failures_rate)
if left < 1 then return {0, tostring((1 - left) / failures_rate), '0', 1} end
local decision = take(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
decision[4] = 0
return decision
"""
)
# Refused keys an address may send a minute before it is refused outright (guessing keys).
FAILURES_PER_MINUTE = 30


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when refused
    remaining: int
    address_blocked: bool = False  # refused for the address's refused keys, not the key's rate


class KeyRateLimit:
    """One per process (its Redis client holds a connection pool)."""

    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._take = self._redis.register_script(_TAKE)
        self._admit = self._redis.register_script(_ADMIT)

    def hit(self, key_id: str, per_minute: int = DEFAULT_PER_MINUTE) -> Decision:
        """Count one call of the key; whether it is allowed, and if not, when to retry."""
        per_minute = max(1, per_minute)
        return self._run(self._take, [KEY_PREFIX + key_id], [per_minute, per_minute / 60.0], per_minute)

    def failed(self, address: str, per_minute: int = FAILURES_PER_MINUTE) -> Decision:
        """One refused key from ``address``; not allowed once the address sent too many lately."""
        decision = self.hit(f"failures:{address}", per_minute)
        return replace(decision, address_blocked=not decision.allowed)

    def admit(
        self,
        address: str,
        key_id: str,
        per_minute: int = DEFAULT_PER_MINUTE,
        failures_per_minute: int = FAILURES_PER_MINUTE,
    ) -> Decision:
        """A call with a valid key from ``address``, in one round trip: refused while the address
        is out of refused keys (whatever key it sends now, a right guess included, so guessing
        gains nothing), else counted against the key's rate."""
        per_minute, failures_per_minute = max(1, per_minute), max(1, failures_per_minute)
        keys = [KEY_PREFIX + f"failures:{address}", KEY_PREFIX + key_id]
        args = [failures_per_minute, failures_per_minute / 60.0, per_minute, per_minute / 60.0]
        return self._run(self._admit, keys, args, per_minute)

    def _run(self, script: Any, keys: list[str], args: list[float], per_minute: int) -> Decision:
        """A script's answer ``{allowed, wait, left[, address blocked]}`` as a decision."""
        try:
            allowed, wait, remaining, *blocked = script(keys=keys, args=args)
        except redis.exceptions.RedisError as exc:
            log.warning("API key rate limit unavailable (%s): call served unpaced", type(exc).__name__)
            return Decision(True, 0, per_minute)
        if int(allowed):
            return Decision(True, 0, int(float(remaining)))
        return Decision(False, max(1, math.ceil(float(wait))), 0, bool(blocked and int(blocked[0])))

    def close(self) -> None:
        self._redis.close()
