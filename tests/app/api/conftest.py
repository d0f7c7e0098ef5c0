"""Fixtures for the tenant API: the connection fixtures of the billing page's tests (a workspace
connected, or provisioned through the real flow; keys made by the service), and ``call``, which
holds every answer to the OpenAPI document."""

from __future__ import annotations

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.app.api.spec import validate
from tests.app.polar.conftest import connected, make_key, ready  # noqa: F401  (fixtures)

DOCUMENTED = ("/plans", "/env", "/openapi.json")


def call(
    client: FlaskClient, path: str, key: str | None = None, *, method: str = "GET", headers=None, **kwargs
) -> TestResponse:
    """Call the tenant API (``path`` under /api/v1) with a key, and hold the answer to the document."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    response = client.open(f"/api/v1{path}", method=method, headers=sent, **kwargs)
    template = path.split("?")[0]
    if method == "GET" and template in DOCUMENTED:
        validate(response, method, template)
    else:  # no such operation: an error, in the document's Error schema
        validate(response)
    return response
