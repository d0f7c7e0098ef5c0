"""Each key's rate limit, in the test process's own Redis: a minute's worth at once, then one call
per 60/limit seconds, each key on its own; without Redis, calls are served."""

from __future__ import annotations

import math
import time

from provisioning.api_keys.throttle import DEFAULT_PER_MINUTE, KeyRateLimit


def test_a_key_gets_its_minute_then_waits(redis_url: str) -> None:
    limit = KeyRateLimit(redis_url)
    decisions = [limit.hit("key-a", 6) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert [d.remaining for d in decisions[:6]] == [5, 4, 3, 2, 1, 0]
    assert decisions[-1].retry_after == 10  # 6 a minute: one every 10 s
    assert limit.hit("key-b", 6).allowed  # another key has its own bucket
    limit.close()


def test_the_default_is_600_a_minute(redis_url: str) -> None:
    limit = KeyRateLimit(redis_url)
    assert DEFAULT_PER_MINUTE == 600
    began = time.monotonic()
    allowed = sum(limit.hit("busy").allowed for _ in range(700))
    refilled = (time.monotonic() - began) * 10  # 10 calls a second come back meanwhile
    assert 600 <= allowed <= 600 + math.ceil(refilled)
    limit.close()


def test_without_redis_calls_are_served(tmp_path) -> None:
    limit = KeyRateLimit(f"unix://{tmp_path / 'no-redis.sock'}")
    decision = limit.hit("key-a", 1)
    assert decision.allowed
    assert limit.hit("key-a", 1).allowed
