"""A request id on every request: taken from a well-formed ``X-Request-Id`` header (a proxy's) or
made here, kept in ``g.request_id`` for logs and audit rows, and sent back in the response."""

from __future__ import annotations

import os
import re

from flask import Flask, Response, g, request

from provisioning.observability import logs

HEADER = "X-Request-Id"
WELL_FORMED = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_from(given: str) -> str:
    """The id of a request that sent ``given`` as its ``X-Request-Id``: that, when well formed,
    else a new one (32 hex digits, as ``uuid4().hex`` looks, without building a UUID)."""
    return given if WELL_FORMED.match(given) else os.urandom(16).hex()


def request_id() -> str:
    return str(g.get("request_id") or "")


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        g.request_id = request_id_from(request.headers.get(HEADER, ""))
        # Every log line of this request (and gunicorn's access line after it) carries the ids.
        logs.clear()
        logs.bind(request_id=g.request_id, workspace_id=(request.view_args or {}).get("workspace_id"))

    @app.after_request
    def _echo(response: Response) -> Response:
        if g.get("request_id"):
            response.headers[HEADER] = g.request_id
        return response
