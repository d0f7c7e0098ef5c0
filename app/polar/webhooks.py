"""Polar's webhook deliveries to an integration: ``POST /polar/webhooks/<path_token>``.

No session, no cookie and no CSRF token: the Standard Webhooks signature is the authentication.
Answers 202 once recorded (or already recorded: Polar retries with the same ``webhook-id``), 202
and ignored at the URL of an organization the connection switched away from, 403 for a bad
signature, 404 for an unknown endpoint, 410 for a disconnected one, 400/413 for a body that is not a
JSON object or too large, 405 for another method.

Served by :class:`WebhookIngress`, a WSGI layer in front of Flask's: Polar sends a delivery for
every event it raises, the platform's most frequent request, and Flask's request context, hooks
and response objects cost about as much CPU as verifying and recording the delivery
(``bench/webhook_ingest.py``). What the app's hooks give every answer, these answers get here: the
request id (``X-Request-Id``, taken or made, bound to the request's log lines) and security headers
(an API's: nothing is ever rendered or framed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from app.requests import HEADER as REQUEST_ID_HEADER
from app.requests import request_id_from
from app.security import HSTS
from provisioning.config import Settings
from provisioning.connect.switch import retired_webhook_path
from provisioning.db import get_database
from provisioning.observability import logs, metrics
from provisioning.webhooks.service import MAX_BODY_BYTES, SIGNED_HEADERS, WebhookRejected, receive

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

log = logging.getLogger(__name__)
PATH_PREFIX = "/polar/webhooks/"
# What the receiver reads of a delivery's headers: the signed ones and the signature, as WSGI names them.
_HEADERS = tuple(
    (name, "HTTP_" + name.upper().replace("-", "_")) for name in (*SIGNED_HEADERS, "webhook-signature")
)


class WebhookIngress:
    """Answers every request under :data:`PATH_PREFIX`; passes the rest to ``wrapped`` (Flask's)."""

    def __init__(self, wrapped: WSGIApplication, settings: Settings) -> None:
        self.wrapped = wrapped
        self.settings = settings
        headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if settings.is_production:
            headers.append(("Strict-Transport-Security", HSTS))
        self.headers = headers

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith(PATH_PREFIX):
            return self.wrapped(environ, start_response)
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        logs.clear()
        logs.bind(request_id=request_id)
        try:
            status, answer = self.answer(environ, path[len(PATH_PREFIX) :])
        except Exception:  # the traceback goes to the log, never to the sender
            log.exception("webhook delivery failed")
            status, answer = 500, {"error": "internal error"}
        body = json.dumps(answer, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        headers = [*self.headers, ("Content-Length", str(len(body))), (REQUEST_ID_HEADER, request_id)]
        if status == 405:
            headers.append(("Allow", "POST"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def answer(self, environ: WSGIEnvironment, path_token: str) -> tuple[int, dict[str, Any]]:
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, {"error": "deliveries are POSTed"}
        if not path_token or "/" in path_token:
            return 404, {"error": "no webhook endpoint here"}
        try:
            # Bounds chunked bodies too, which carry no Content-Length: reading past it is a 413.
            body = get_input_stream(environ, max_content_length=MAX_BODY_BYTES).read()
        except RequestEntityTooLarge:
            metrics.WEBHOOKS_RECEIVED.inc()
            metrics.WEBHOOKS_REJECTED.labels("too_large").inc()
            return 413, {"error": "payload too large"}
        headers = {name: environ[key] for name, key in _HEADERS if key in environ}
        database = get_database()
        try:
            receipt = receive(database, self.settings, path_token=path_token, body=body, headers=headers)
        except WebhookRejected as exc:
            if exc.status == 404:
                with database.session() as session:
                    if retired_webhook_path(session, path_token):
                        # Our endpoint in an organization the connection switched away from (its
                        # deletion pending, or deliveries already under way): acknowledged, so Polar
                        # stops retrying, and ignored.
                        return 202, {"ignored": "previous organization"}
            return exc.status, {"error": str(exc)}
        return 202, {"received": receipt.event_type, "duplicate": receipt.duplicate}


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["connect_polar.settings"]
    app.wsgi_app = WebhookIngress(app.wsgi_app, settings)  # type: ignore[method-assign]
