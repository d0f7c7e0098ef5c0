"""A request id on every request: taken from a well-formed ``X-Request-Id`` header (a proxy's) or
made here, kept in ``g.request_id`` for logs and audit rows, and sent back in the response."""

from __future__ import annotations

import os
import re

from flask import Flask, Response, g, request

from provisioning.observability import logs

HEADER = "X-Request-Id"
WELL_FORMED = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id() -> str:
    return str(g.get("request_id") or "")


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = (
            given if WELL_FORMED.match(given) else os.urandom(16).hex()
        )  # as uuid4().hex looks, without building a UUID
        # Every log line of this request (and gunicorn's access line after it) carries the ids.
        logs.clear()
        logs.bind(request_id=g.request_id, workspace_id=(request.view_args or {}).get("workspace_id"))

    @app.after_request
    def _echo(response: Response) -> Response:
        if g.get("request_id"):
            response.headers[HEADER] = g.request_id
        return response
