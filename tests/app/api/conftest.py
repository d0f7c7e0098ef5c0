"""Fixtures for the tenant API: the connection fixtures of the billing page's tests (a workspace
connected, or provisioned through the real flow; keys made by the service), and ``call``, which
holds every answer to the OpenAPI document."""

from __future__ import annotations

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.api.openapi import DOCUMENT
from tests.app.api.spec import validate
from tests.app.polar.conftest import connected, make_key, ready  # noqa: F401  (fixtures)


def call(
    client: FlaskClient,
    path: str,
    key: str | None = None,
    *,
    method: str = "GET",
    headers=None,
    template: str | None = None,
    **kwargs,
) -> TestResponse:
    """Call the tenant API (``path`` under /api/v1) with a key, and hold the answer to the document
    (``template``: the documented path of a path with parameters)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    response = client.open(f"/api/v1{path}", method=method, headers=sent, **kwargs)
    template = template or path.split("?")[0]
    if method.lower() in DOCUMENT["paths"].get(template, {}):
        validate(response, method, template)
    else:  # no such operation: an error, in the document's Error schema
        validate(response)
    return response
