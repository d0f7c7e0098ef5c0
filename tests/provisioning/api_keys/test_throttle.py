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


def test_a_valid_keys_call_counts_against_the_key_unless_its_address_is_refused(redis_url: str) -> None:
    limit = KeyRateLimit(redis_url)
    calls = [limit.admit("10.0.0.1", "key-a", per_minute=3, failures_per_minute=2) for _ in range(4)]
    assert [(d.allowed, d.remaining, d.address_blocked) for d in calls] == [
        (True, 2, False),
        (True, 1, False),
        (True, 0, False),
        (False, 0, False),
    ]
    assert calls[-1].retry_after == 20  # the key's rate: 3 a minute

    guesses = [limit.failed("10.0.0.2", 2) for _ in range(3)]
    assert [(d.allowed, d.address_blocked) for d in guesses] == [(True, False), (True, False), (False, True)]
    refused = limit.admit("10.0.0.2", "key-b", per_minute=3, failures_per_minute=2)
    assert (refused.allowed, refused.address_blocked) == (False, True)
    assert refused.retry_after == 30  # the address's rate: 2 refused keys a minute
    # Nothing was taken from the key: from another address it has its whole minute.
    assert limit.admit("10.0.0.3", "key-b", per_minute=3, failures_per_minute=2).remaining == 2
    limit.close()


def test_without_redis_calls_are_served(tmp_path) -> None:
    limit = KeyRateLimit(f"unix://{tmp_path / 'no-redis.sock'}")
    decision = limit.hit("key-a", 1)
    assert decision.allowed
    assert limit.hit("key-a", 1).allowed
    assert limit.admit("10.0.0.1", "key-a", 1, 1).allowed
