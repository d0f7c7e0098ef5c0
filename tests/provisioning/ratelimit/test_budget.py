"""The shared rate budget on a real Redis: lanes, fairness across workspaces, pauses after a 429
shared by every process, the local fallback without Redis, and processes sharing one budget
exactly as measured at the local Polar."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from polar_emulator import EmulatorServer

from provisioning.config import Settings
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarBusy
from provisioning.polar.oauth import PolarOAuth
from provisioning.ratelimit import lanes, registry
from provisioning.ratelimit.budget import BudgetExhausted, RateBudget
from tests.provisioning.polar.test_client import ORGS, list_orgs, user_token

ROOT = Path(__file__).resolve().parents[3]
INTERACTIVE = lanes.Caller()


def budget(redis_url: str, limit: int, *, reserve: float = 0.0, **kwargs: float) -> RateBudget:
    """A budget that never waits inline: each refusal is visible as BudgetExhausted."""
    options = {"max_background_wait": 0.0, "max_interactive_wait": 0.0, **kwargs}
    return RateBudget(redis_url, "sandbox:test", limit, reserve=reserve, **options)


def admitted(b: RateBudget, caller: lanes.Caller, attempts: int) -> int:
    granted = 0
    for _ in range(attempts):
        try:
            b.acquire(caller)
        except BudgetExhausted:
            continue
        granted += 1
    return granted


def test_background_work_leaves_the_reserved_share_to_people(redis_url: str) -> None:
    b = budget(redis_url, 20, reserve=0.25)

    assert admitted(b, lanes.background("ws-a"), 30) == 15  # the lane stops at 20 × (1 - 0.25)
    with pytest.raises(BudgetExhausted) as refused:
        b.acquire(lanes.background("ws-b"))
    assert 50 < refused.value.retry_after <= 61  # when the oldest call leaves the minute

    assert admitted(b, INTERACTIVE, 10) == 5  # a person still gets the last five
    with pytest.raises(BudgetExhausted):
        b.acquire(INTERACTIVE)


def test_people_s_calls_this_minute_push_background_work_back_by_as_many(redis_url: str) -> None:
    """A wave of connects: people made 10 calls this minute, so background work stops 10 calls
    earlier than the reserve alone would make it, and people keep room for as many again."""
    b = budget(redis_url, 40, reserve=0.25)  # background alone: 30

    assert admitted(b, INTERACTIVE, 10) == 10
    # Background stops where people still have the reserve (10) and as much again as they used (10).
    assert admitted(b, lanes.background("ws"), 40) == 10
    assert admitted(b, INTERACTIVE, 30) == 20


def test_one_workspace_cannot_starve_the_others(redis_url: str) -> None:
    b = budget(redis_url, 40)
    hog, other = lanes.background("ws-hog"), lanes.background("ws-other")

    assert admitted(b, hog, 25) == 25  # alone, a workspace may use the whole lane
    b.acquire(other)  # another workspace asks: each may now hold half of the minute
    with pytest.raises(BudgetExhausted):
        b.acquire(hog)
    assert admitted(b, other, 20) == 14  # the rest of the minute goes to the one that waited


def test_a_pause_after_a_429_holds_every_process_and_lane(redis_url: str) -> None:
    first, second = budget(redis_url, 100), budget(redis_url, 100)  # two processes' budgets
    first.pause(30)

    for b, caller in ((second, INTERACTIVE), (second, lanes.background("ws")), (first, INTERACTIVE)):
        with pytest.raises(BudgetExhausted) as refused:
            b.acquire(caller)
        assert 25 < refused.value.retry_after <= 30
        assert "slow down" in str(refused.value)


def test_a_short_wait_is_waited_inline_and_a_long_one_is_not(redis_url: str) -> None:
    b = RateBudget(redis_url, "sandbox:test", 100, max_background_wait=3.0)
    b.pause(0.5)
    assert 0.4 <= b.acquire(lanes.background("ws")) < 3.0  # waited for the pause, then went

    waits: list[float] = []
    b = RateBudget(redis_url, "sandbox:test", 100, max_background_wait=3.0, sleep=waits.append)
    b.pause(10)
    with pytest.raises(BudgetExhausted) as refused:
        b.acquire(lanes.background("ws"))
    assert waits == []  # longer than the lane may wait: refused at once, with when to come back
    assert 9 < refused.value.retry_after <= 10


def test_without_redis_each_process_keeps_a_small_local_budget(tmp_path: Path) -> None:
    down = f"unix://{tmp_path / 'no-redis.sock'}"
    b = RateBudget(down, "sandbox:test", 100, reserve=0.0, max_background_wait=0, max_interactive_wait=0)

    assert admitted(b, INTERACTIVE, 50) == 10  # a tenth of the limit: never unlimited
    with pytest.raises(BudgetExhausted) as refused:
        b.acquire(INTERACTIVE)
    assert refused.value.retry_after <= 61  # and never stuck: the local minute passes too


def test_a_429_from_polar_pauses_the_client_for_everyone(
    emulator: EmulatorServer, control: httpx.Client, redis_url: str
) -> None:
    token = user_token(emulator)
    shared = RateBudget(redis_url, "sandbox:test", 1000)
    registry.use(emulator.url, shared)
    control.post("/_emulator/rate-limit", json={"per_minute": 1}).raise_for_status()
    try:
        api = PolarApi(emulator.url, token, max_retry_after=5.0)
        list_orgs(api)
        with pytest.raises(PolarBusy) as busy:
            list_orgs(api)  # Polar: 429, Retry-After 60
        assert busy.value.retry_after == 60

        seen = len(control.get("/_emulator/requests").json())
        other_process = RateBudget(redis_url, "sandbox:test", 1000, max_interactive_wait=0)
        with pytest.raises(BudgetExhausted):
            other_process.acquire(INTERACTIVE)
        with pytest.raises(PolarBusy):
            list_orgs(PolarApi(emulator.url, token))  # refused before it reaches Polar
        assert len(control.get("/_emulator/requests").json()) == seen
    finally:
        control.post("/_emulator/rate-limit", json={"per_minute": None}).raise_for_status()


CALLER = textwrap.dedent(
    """
    import sys
    from provisioning.polar.client import PolarApi
    from provisioning.ratelimit import lanes, registry
    from provisioning.ratelimit.budget import RateBudget

    polar_url, redis_url, token, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    registry.use(polar_url, RateBudget(redis_url, "sandbox:shared", 10, reserve=0.0, window=2.1))
    api = PolarApi(polar_url, token, caller=lanes.background("ws-" + sys.argv[5]))
    for _ in range(calls):
        api.read(api.sdk.organizations.list, action="list organizations", scope="organizations:read")
    """
)


def test_processes_share_one_budget_exactly_as_polar_sees_it(
    emulator: EmulatorServer, control: httpx.Client, redis_url: str
) -> None:
    """Three processes, 8 calls each, a budget of 10 calls per 2.1 s (the margin the real budget keeps
    over Polar's minute, scaled): at the local Polar no 2-second
    stretch holds more than 10 of them, and they all got through."""
    token = user_token(emulator)
    control.delete("/_emulator/requests")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, emulator.url, redis_url, token, "8", str(n)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for n in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()

    calls = [r for r in control.get("/_emulator/requests").json() if r["path"] == ORGS]
    assert len(calls) == 24 and {r["status"] for r in calls} == {200}
    starts = sorted(r["started_ms"] for r in calls)
    busiest = max(sum(1 for t in starts if s <= t < s + 2000) for s in starts)
    assert busiest <= 10, json.dumps(starts)
    assert starts[-1] - starts[0] >= 2000  # 24 calls at 10 per 2 s cannot take less


def test_the_token_endpoints_have_a_budget_of_their_own(
    emulator: EmulatorServer, redis_url: str, settings: Settings
) -> None:
    """Polar counts a call with an access token against the OAuth client, and a call to the token
    endpoints (no access token) against the caller's address: a paused client budget does not stop
    an introspection, a paused token-endpoint budget does."""
    token = user_token(emulator)
    registry.install(settings.model_copy(update={"redis_url": redis_url}))
    client_budget = registry.budget_for(emulator.url)
    token_budget = registry.budget_for(emulator.url, token_endpoints=True)
    assert client_budget is not None and token_budget is not None
    assert client_budget.key != token_budget.key

    client_budget.pause(30)
    assert PolarOAuth(settings.polar()).introspect(token).active
    with pytest.raises(PolarBusy):
        list_orgs(PolarApi(emulator.url, token))

    token_budget.pause(30)
    with pytest.raises(PolarBusy):
        PolarOAuth(settings.polar()).introspect(token)
