"""Which budget a call to Polar draws on: one per (environment, OAuth client), found by the API URL
the call goes to. Every process installs the budgets of the environments it serves at start-up
(``install``); a URL with none installed (a test's own Polar client) is not limited."""

from __future__ import annotations

import hashlib
import threading

from provisioning.config import PolarEndpoints, Settings
from provisioning.ratelimit.budget import RateBudget

_budgets: dict[str, RateBudget] = {}
_lock = threading.Lock()


def budget_key(endpoints: PolarEndpoints) -> str:
    """Polar counts per OAuth client: the key names the environment and the client (hashed)."""
    client = hashlib.sha256(endpoints.client_id.encode()).hexdigest()[:16]
    return f"{endpoints.environment.value}:{client}"


def install(settings: Settings) -> None:
    """The budgets of every environment ``settings`` serves, replacing any from other settings."""
    with _lock:
        for endpoints in settings.polar_environments.values():
            key, limit = budget_key(endpoints), endpoints.rate_limit
            current = _budgets.get(endpoints.api_url)
            reserve = settings.polar_rate_interactive_reserve
            if (
                current is not None
                and current.key == key
                and current.limit == limit
                and current.reserve == reserve
                and current.redis_url == settings.redis_url
            ):
                continue
            _budgets[endpoints.api_url] = RateBudget(settings.redis_url, key, limit, reserve=reserve)


def budget_for(api_url: str) -> RateBudget | None:
    return _budgets.get(api_url.rstrip("/"))


def uninstall() -> None:
    with _lock:
        _budgets.clear()


def use(api_url: str, budget: RateBudget) -> None:
    """Calls to ``api_url`` draw on ``budget`` (a budget built by hand: benchmarks, tests)."""
    with _lock:
        _budgets[api_url.rstrip("/")] = budget
