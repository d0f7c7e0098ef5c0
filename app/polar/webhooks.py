"""Polar's webhook deliveries to an integration: ``POST /polar/webhooks/<path_token>``.

No session and no CSRF token: the Standard Webhooks signature is the authentication. Answers
202 once recorded (or already recorded: Polar retries with the same ``webhook-id``), 202 and ignored
at the URL of an organization the connection switched away from, 403 for a bad signature, 404 for
an unknown endpoint, 400/413 for a body that is not a JSON object or too large.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.database import db_session, settings
from app.extensions import csrf
from provisioning.connect.switch import retired_webhook_path
from provisioning.db import get_database
from provisioning.observability import metrics
from provisioning.webhooks.service import MAX_BODY_BYTES, WebhookRejected, receive

bp = Blueprint("polar_webhooks", __name__)
PATH_PREFIX = "/polar/webhooks/"  # no browser session here (app.api.sessions)


@bp.post(PATH_PREFIX + "<path_token>")
@csrf.exempt
def deliver(path_token: str) -> tuple[Response, int]:
    # Also bounds chunked bodies, which carry no Content-Length: reading past it answers 413.
    request.max_content_length = MAX_BODY_BYTES
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        metrics.WEBHOOKS_RECEIVED.inc()
        metrics.WEBHOOKS_REJECTED.labels("too_large").inc()
        return jsonify(error="payload too large"), 413
    try:
        receipt = receive(
            get_database(), settings(), path_token=path_token, body=body, headers=dict(request.headers)
        )
    except WebhookRejected as exc:
        if exc.status == 404 and retired_webhook_path(db_session(), path_token):
            # Our endpoint in an organization the connection switched away from (its deletion
            # pending, or deliveries already under way): acknowledged, so Polar stops retrying,
            # and ignored.
            return jsonify(ignored="previous organization"), 202
        return jsonify(error=str(exc)), exc.status
    return jsonify(received=receipt.event_type, duplicate=receipt.duplicate), 202


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
