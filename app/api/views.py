"""The tenant API's endpoints under ``/api/v1``: JSON only (the ``.env`` block aside), each
answering for the connection its key's mode picks (test: sandbox, live: production)."""

from __future__ import annotations

import math
from collections.abc import Callable

from flask import Blueprint, Flask, Response, jsonify, request

from app.api import auth, openapi, sessions
from app.api.auth import api_key_required, current_key
from app.api.errors import NO_STORE, error_response
from app.database import catalog, db_session, settings
from app.extensions import csrf
from provisioning.api_keys.models import ApiKey
from provisioning.config import Settings
from provisioning.integrations.models import PolarIntegration
from provisioning.polar.errors import PolarBusy, ProvisioningError
from provisioning.tenant import billing
from provisioning.tenant import service as tenant
from provisioning.tenant.billing import InvalidRequest, PermissionsUpgrade, PolarUnavailable, UnknownCustomer
from provisioning.tenant.service import NotReady

bp = Blueprint("api", __name__, url_prefix="/api/v1")
FORMATS = ("json", "dotenv")
STATE_SOURCES = ("auto", "polar")


def _connection(key: ApiKey) -> PolarIntegration | Response:
    """The key's connection, read with the key (``auth.current_connection``), if it is ready; else
    409 saying why not."""
    try:
        return tenant.ready(db_session(), settings(), auth.current_connection(), key.environment)
    except NotReady as exc:
        return error_response(409, "not_ready", str(exc))


def _json(body: object) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = NO_STORE
    return response


@bp.get("/plans")
@api_key_required
def plans() -> Response:
    """The catalog as provisioned in the key's connection: each plan with its prices, benefits and
    Polar product id."""
    connection = _connection(current_key())
    if isinstance(connection, Response):
        return connection
    return _json(tenant.plans(db_session(), connection, catalog()))


def _wants_dotenv() -> bool | None:
    """``?format=dotenv`` (or ``json``) decides; without it, ``Accept`` preferring text/plain.
    ``None`` for an unknown format."""
    chosen = request.args.get("format")
    if chosen is not None:
        return chosen == "dotenv" if chosen in FORMATS else None
    best = request.accept_mimetypes.best_match(["application/json", "text/plain"])
    return best == "text/plain"


@bp.get("/env")
@api_key_required
def env() -> Response:
    """What a tenant's deploy needs: ``POLAR_SERVER``, ``POLAR_ORGANIZATION_ID`` and one
    ``POLAR_PRODUCT_<PLAN>`` per plan, as JSON and as a ``.env`` block (or the block alone, as
    text/plain)."""
    dotenv = _wants_dotenv()
    if dotenv is None:
        return error_response(400, "bad_request", "format must be json or dotenv.")
    key = current_key()
    connection = _connection(key)
    if isinstance(connection, Response):
        return connection
    values = tenant.deploy_env(db_session(), connection, catalog())
    if dotenv:
        return Response(
            values.dotenv, mimetype="text/plain", headers={"Cache-Control": NO_STORE, "Vary": "Accept"}
        )
    response = _json({"mode": key.mode.value, "variables": values.variables, "dotenv": values.dotenv})
    response.headers["Vary"] = "Accept"
    return response


def _body() -> object | Response:
    """The request's JSON body, or a 400 when it is not JSON."""
    if not request.is_json:
        return error_response(400, "bad_request", "Send the body as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if body is None:
        return error_response(400, "bad_request", "The body is not valid JSON.")
    return body


def _polar_error(exc: Exception) -> Response:
    """What a runtime call's failure answers (see the document's responses)."""
    if isinstance(exc, InvalidRequest):
        return error_response(422, exc.code, str(exc))
    if isinstance(exc, PermissionsUpgrade):
        return error_response(409, "permissions_upgrade", str(exc))
    if isinstance(exc, UnknownCustomer):
        return error_response(404, "unknown_customer", str(exc))
    if isinstance(exc, PolarBusy):
        retry = str(max(1, math.ceil(exc.retry_after)))
        return error_response(
            503, "polar_busy", f"Polar is busy: retry in {retry} s.", {"Retry-After": retry}
        )
    if isinstance(exc, ProvisioningError) and exc.needs_reconnect and not exc.retryable:
        return error_response(
            409,
            "not_ready",
            "Polar no longer accepts this connection's access. The workspace's owner reconnects Polar "
            "on the billing page.",
        )
    return error_response(
        502, "polar_unavailable", "Polar did not answer as expected; try again in a moment."
    )


RUNTIME_ERRORS = (InvalidRequest, PermissionsUpgrade, UnknownCustomer, PolarUnavailable, ProvisioningError)


@bp.post("/checkouts")
@api_key_required
def create_checkout() -> Response:
    """A Polar checkout for a plan, for the tenant's customer (by its own id): where to send them."""
    body = _body()
    if isinstance(body, Response):
        return body
    try:
        wanted = billing.checkout_request(body, production=settings().is_production)
    except InvalidRequest as exc:
        return _polar_error(exc)
    connection = _connection(current_key())
    if isinstance(connection, Response):
        return connection
    return _created(lambda: billing.create_checkout(db_session(), settings(), connection, catalog(), wanted))


def _created(create: Callable[[], object]) -> Response:
    """201 with what ``create`` made at Polar, or the error it met; the session holds nothing after."""
    try:
        created = create()
    except RUNTIME_ERRORS as exc:
        return _polar_error(exc)
    finally:
        db_session().rollback()
    response = _json(created)
    response.status_code = 201
    return response


@bp.post("/customer-portal")
@api_key_required
def create_customer_portal() -> Response:
    """A Polar customer portal session for the tenant's customer (by its own id)."""
    body = _body()
    if isinstance(body, Response):
        return body
    try:
        external_id = billing.portal_request(body)
    except InvalidRequest as exc:
        return _polar_error(exc)
    connection = _connection(current_key())
    if isinstance(connection, Response):
        return connection
    return _created(lambda: billing.create_portal_session(db_session(), settings(), connection, external_id))


@bp.get("/customers/<external_id>/state")
@api_key_required
def customer_state(external_id: str) -> Response:
    """The customer's subscriptions, benefits and meters: from the platform's own state once it
    knows the customer, else (or with ``?source=polar``) read from Polar now."""
    source = request.args.get("source", "auto")
    if source not in STATE_SOURCES:
        return error_response(400, "bad_request", "source must be auto or polar.")
    connection = _connection(current_key())
    if isinstance(connection, Response):
        return connection
    try:
        state = billing.customer_state(
            db_session(), settings(), connection, external_id, from_polar=source == "polar"
        )
    except RUNTIME_ERRORS as exc:
        return _polar_error(exc)
    finally:
        db_session().rollback()
    return _json(state)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The API's OpenAPI 3.1 description (no key needed)."""
    response = jsonify(openapi.DOCUMENT)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def init_app(app: Flask, config: Settings) -> None:
    auth.init_app(app, config)
    sessions.init_app(app)
    csrf.exempt(bp)  # no cookies: a key in a header is what a forged request cannot send
    app.register_blueprint(bp)
