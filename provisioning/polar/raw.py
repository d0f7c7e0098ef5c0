"""GET calls read as plain JSON, through polar-sdk's own transport (its hooks, its errors).

Where polar-sdk 1.0.2 cannot load a correct answer of Polar's: its ``CustomerStateSubscription``
allows neither ``active`` nor ``trialing`` as a status, so a customer's state and anything that
embeds one fail to load; the billing state stores Polar's JSON as it is anyway.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from polar.base import parse_response_json
from polar.v2026_10.errors import ResourceNotFound

from provisioning.polar.client import PolarApi


def get_json(api: PolarApi, path: str, *, action: str, scope: str, **path_params: str) -> dict[str, Any]:
    """``GET path`` (``{name}`` placeholders filled from ``path_params``, each quoted) as a JSON
    object; Polar's errors raise as the SDK's (404: ``ResourceNotFound``), through ``api.read``."""
    client = api.sdk.customers.client

    def call(*, request_access_token: str | None = None, request_timeout: Any = None) -> Any:
        request = client.build_request(
            method="GET",
            url=path,
            path_params={name: quote(value, safe="") for name, value in path_params.items()},
            request_timeout=request_timeout,
            request_access_token=request_access_token,
        )
        return parse_response_json(client.send_request(request), None, {404: ResourceNotFound})

    answer = api.read(call, action=action, scope=scope)
    if not isinstance(answer, dict):
        raise ValueError(f"Polar answered {path} with something other than an object")
    return answer
