"""Which budget a call to Polar draws on, found by the API URL the call goes to.

Polar counts a call with an access token against the token's OAuth client (one budget per
environment and client); a call to the token endpoints (code exchange, refresh, introspection,
revocation) carries no access token and counts against the caller's address, in a bucket of its own
with the same limit (NOTES 2.4): those draw on a second budget, so a wave of connects does not eat
the client's minute. Every process installs the budgets of the environments it serves at start-up
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
            limit, reserve = endpoints.rate_limit, settings.polar_rate_interactive_reserve
            for url, key in (
                (endpoints.api_url, budget_key(endpoints)),
                (_token_endpoints(endpoints.api_url), f"{endpoints.environment.value}:token-endpoints"),
            ):
                current = _budgets.get(url)
                if (
                    current is not None
                    and current.key == key
                    and current.limit == limit
                    and current.reserve == reserve
                    and current.redis_url == settings.redis_url
                ):
                    continue
                _budgets[url] = RateBudget(settings.redis_url, key, limit, reserve=reserve)


def budget_for(api_url: str, *, token_endpoints: bool = False) -> RateBudget | None:
    url = api_url.rstrip("/")
    return _budgets.get(_token_endpoints(url) if token_endpoints else url)


def _token_endpoints(api_url: str) -> str:
    return f"{api_url}/v1/oauth2"


def uninstall() -> None:
    with _lock:
        _budgets.clear()


def use(api_url: str, budget: RateBudget) -> None:
    """Calls to ``api_url`` draw on ``budget`` (a budget built by hand: benchmarks, tests)."""
    with _lock:
        _budgets[api_url.rstrip("/")] = budget
