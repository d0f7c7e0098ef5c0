"""``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: no session, no sign-in.

``/metrics`` is served with ``Authorization: Bearer $METRICS_TOKEN`` (401 without a token, 403 with
a wrong one); with METRICS_TOKEN unset, only to loopback clients (in production the client address
is the proxy's forwarded one, so a scraper elsewhere needs the token).
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from app.admin.repository import oldest_queued_run
from app.database import db_session, settings
from app.ops.metrics import scrape
from provisioning.db import get_database
from provisioning.health.readiness import readiness

bp = Blueprint("ops", __name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz() -> tuple[Response, int, dict[str, str]]:
    return jsonify(status="ok"), 200, NO_STORE


@bp.get("/readyz")
def readyz() -> tuple[Response, int, dict[str, str]]:
    result = readiness(get_database(), settings())
    return jsonify(result.as_json()), 200 if result.ready else 503, NO_STORE


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int, dict[str, str]]:
    token = settings().metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            headers = {**NO_STORE, "WWW-Authenticate": 'Bearer realm="metrics"'}
            return jsonify(error="a bearer token is required"), 401, headers
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return jsonify(error="wrong token"), 403, NO_STORE
    elif not _loopback(request.remote_addr):
        return (
            jsonify(error="METRICS_TOKEN is not set: /metrics is served to loopback clients only"),
            403,
            NO_STORE,
        )
    body = scrape(settings().redis_url, lambda: oldest_queued_run(db_session()))
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
