"""The shared rate budget for one Polar environment's OAuth client.

Polar limits each OAuth client, across every workspace connected through it, to a number of
requests per minute (500 in production, 100 in sandbox: NOTES 2.4), with fixed windows that start
at an unknown moment; over the limit it answers 429 with ``Retry-After`` (the window's length).
Every process on every machine asks this budget before each call to Polar.

Why a sliding log and not a token bucket: a log of the last minute's calls (a Redis sorted set,
stamped with Redis's own clock) admits at most ``limit`` calls in *any* minute, whatever phase
Polar's windows have, and still lets a burst use the whole minute at once; a token bucket with a
burst either admits more than the limit in some minute or paces every call. ``limits`` (the
library) has a Redis sliding window, but only as an approximation over two fixed windows and with
no lanes or fairness, so the decision is one small Lua script, atomic in Redis:

- **interactive** calls (a person is waiting) may use the whole limit;
- **background** calls (runs, rollouts, health checks) may use the limit less a reserved share
  (``POLAR_RATE_INTERACTIVE_RESERVE``) and less as many calls again as people made in the last
  minute, so a person never waits behind a rollout, even in a wave of connects;
- within the background lane no workspace takes more than its fair share of the minute when
  others are waiting too (the larger of an equal split and ``TENANT_FLOOR`` of the lane), so one
  workspace's work cannot starve the rest;
- a 429 from Polar pauses the whole client, for every process, for its ``Retry-After``.

A caller waits inline only briefly (background: ``max_background_wait``, a few seconds); a longer
wait raises :class:`BudgetExhausted` with the time the budget frees up, and a run is deferred until
then instead of holding its worker. With Redis unreachable, each process keeps a conservative local
log (``LOCAL_SHARE`` of the limit): never unlimited, never stuck.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import redis

from provisioning.errors import ConnectPolarError
from provisioning.ratelimit.lanes import Caller, Lane

log = logging.getLogger(__name__)

WINDOW_SECONDS = 61.0  # Polar's minute, plus a second for the time a call takes to reach it
TENANT_FLOOR = 0.25  # a workspace may always use this share of the background lane
LOCAL_SHARE = 0.1  # each process's share of the limit while Redis cannot be reached
REDIS_RETRY_SECONDS = 5.0

# KEYS: 1 log of calls (member -> ms), 2 pause flag, 3 active tenants (tenant -> last ms),
#       4 this tenant's log of background calls, 5 log of interactive calls
# ARGV: 1 lane limit, 2 window ms, 3 member, 4 tenant ('' for an interactive call), 5 tenant floor
# Returns 0 when the call may go (and records it), else the milliseconds until it might (negative
# while the client is paused after a 429).
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tenant = ARGV[4]
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return -paused end
local share = limit
if tenant ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  redis.call('ZADD', KEYS[3], now, tenant)
  redis.call('PEXPIRE', KEYS[3], window)
  local tenants = redis.call('ZCARD', KEYS[3])
  share = math.max(math.ceil(limit / tenants), math.ceil(limit * tonumber(ARGV[5])))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if tenant ~= '' then
  -- Background leaves the reserve and, on top, as much room as people used this minute.
  limit = math.max(1, limit - redis.call('ZCARD', KEYS[5]))
end
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
if tenant ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  local mine = redis.call('ZCARD', KEYS[4])
  if mine >= share then
    local oldest = redis.call('ZRANGE', KEYS[4], mine - share, mine - share, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
  end
  redis.call('ZADD', KEYS[4], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[4], window)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
if tenant == '' then
  redis.call('ZADD', KEYS[5], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[5], window)
end
return 0
"""


class BudgetExhausted(ConnectPolarError):
    """The budget frees up in ``retry_after`` seconds, longer than this caller may wait inline."""

    def __init__(self, retry_after: float, *, paused: bool = False) -> None:
        why = "Polar asked us to slow down" if paused else "Polar's rate limit for our client is used up"
        super().__init__(f"{why}; the budget frees up in {retry_after:.0f}s")
        self.retry_after = retry_after


class RateBudget:
    """The budget of one (environment, OAuth client), shared through Redis by every process."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        limit: int,
        *,
        reserve: float = 0.05,
        window: float = WINDOW_SECONDS,
        max_background_wait: float = 3.0,
        max_interactive_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis_url = redis_url
        self.key = key
        self.limit = limit
        self.reserve = reserve
        self.window = window
        self.max_wait = {Lane.BACKGROUND: max_background_wait, Lane.INTERACTIVE: max_interactive_wait}
        self._sleep = sleep
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._script = self._redis.register_script(ACQUIRE)
        self._redis_down_until = 0.0
        self._local = LocalLog(max(1, int(limit * LOCAL_SHARE)), window)

    def __repr__(self) -> str:
        return f"RateBudget({self.key!r}, limit={self.limit}/min)"

    def lane_limit(self, lane: Lane) -> int:
        if lane is Lane.INTERACTIVE:
            return self.limit
        return max(1, math.floor(self.limit * (1 - self.reserve)))

    def acquire(self, caller: Caller) -> float:
        """Wait for room for one call; returns the seconds waited. Raises BudgetExhausted when the
        wait would be longer than the caller's lane allows."""
        started = time.monotonic()
        deadline = started + self.max_wait[caller.lane]
        while True:
            wait, paused = self._try(caller)
            if wait <= 0:
                return time.monotonic() - started
            if time.monotonic() + wait > deadline:
                raise BudgetExhausted(wait, paused=paused)
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Polar answered 429: nobody calls it through this client for ``seconds``."""
        ms = max(1, int(seconds * 1000))
        try:
            self._redis.set(self._key("paused"), "1", px=ms)
        except redis.exceptions.RedisError:
            self._local.pause(seconds)

    def _try(self, caller: Caller) -> tuple[float, bool]:
        """(seconds to wait, whether because of a pause): (0, False) when the call was admitted."""
        limit = self.lane_limit(caller.lane)
        tenant = (caller.tenant or "-") if caller.lane is Lane.BACKGROUND else ""
        if time.monotonic() >= self._redis_down_until:
            try:
                ms = int(
                    self._script(
                        keys=[
                            self._key("log"),
                            self._key("paused"),
                            self._key("tenants"),
                            self._key(f"tenant:{tenant}"),
                            self._key("interactive"),
                        ],
                        args=[limit, int(self.window * 1000), uuid.uuid4().hex, tenant, TENANT_FLOOR],
                    )
                )
                return abs(ms) / 1000, ms < 0
            except redis.exceptions.RedisError as exc:
                log.warning(
                    "the rate budget's Redis cannot be reached (%s); keeping a local budget of %d/min",
                    type(exc).__name__,
                    self._local.limit,
                )
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        local_limit = self._local.limit if caller.lane is Lane.INTERACTIVE else self._local.background
        return self._local.try_acquire(local_limit), False

    def _key(self, part: str) -> str:
        return f"connect_polar:budget:{self.key}:{part}"


class LocalLog:
    """This process's sliding log, used only while Redis is unreachable."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.background = max(1, limit - max(1, limit // 10)) if limit > 1 else 1
        self.window = window
        self._calls: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def try_acquire(self, limit: int) -> float:
        with self._lock:
            now = time.monotonic()
            if now < self._paused_until:
                return self._paused_until - now
            while self._calls and self._calls[0] <= now - self.window:
                self._calls.popleft()
            if len(self._calls) >= limit:
                return max(0.001, self._calls[len(self._calls) - limit] + self.window - now)
            self._calls.append(now)
            return 0.0
