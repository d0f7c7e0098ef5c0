"""Helpers for the catalog resource tests: clients, seeded organizations and small builders."""

from __future__ import annotations

from typing import Any

import httpx
from polar.v2026_10 import Polar

from polar_emulator import EmulatorServer
from polar_emulator_tests.spec import validate_response


def sdk(emulator: EmulatorServer, token: str) -> Polar:
    return Polar(access_token=token, base_url=emulator.url)


def http(emulator: EmulatorServer, token: str) -> httpx.Client:
    """Raw client speaking 2026-10, like the SDK."""
    return httpx.Client(
        base_url=emulator.url,
        headers={"Authorization": f"Bearer {token}", "Polar-Version": "2026-10"},
        timeout=10,
    )


def org_id(emulator: EmulatorServer, slug: str) -> str:
    return next(o["id"] for o in emulator.store.organizations.values() if o["slug"] == slug)


def call(
    client: httpx.Client, method: str, template: str, status: int, *, path: str | None = None, **kw: Any
) -> Any:
    """Make a call, assert its status and validate the body against the spec; return the JSON."""
    response = client.request(method, path or template, **kw)
    assert response.status_code == status, response.text
    body = response.json() if response.content else None
    validate_response(method, template, status, body)
    return body


METER_BODY = {
    "name": "API calls",
    "filter": {
        "conjunction": "and",
        "clauses": [{"property": "name", "operator": "eq", "value": "api_call"}],
    },
    "aggregation": {"func": "count"},
}


def fixed_price(amount: int = 1000, **extra: Any) -> dict[str, Any]:
    return {"amount_type": "fixed", "price_amount": amount, **extra}


def product_body(org: str | None, **extra: Any) -> dict[str, Any]:
    body = {"name": "Pro plan", "recurring_interval": "month", "prices": [fixed_price()], **extra}
    if org is not None:
        body["organization_id"] = org
    return body


def demo_token(emulator: EmulatorServer, issue_token: Any, **kw: Any) -> str:
    """A demo-user token narrowed to its one organization, so creates need no organization_id."""
    return issue_token(organization_ids=[org_id(emulator, "demo-org")], **kw)
