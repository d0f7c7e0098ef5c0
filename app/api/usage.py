"""The tenant API's usage endpoints, on the ``/api/v1`` blueprint: ``POST /usage`` stores a batch
of usage events (answered 202 once committed; a job sends them to Polar) and
``GET /usage/{external_id}`` says whether one reached Polar."""

from __future__ import annotations

from flask import Response, request

from app.api.auth import api_key_required, current_connection, current_key
from app.api.errors import error_response
from app.api.views import _body, _json, _polar_error, bp
from app.database import db_session, settings
from provisioning.tenant.billing import InvalidRequest, PermissionsUpgrade
from provisioning.tenant.service import NotReady
from provisioning.usage import service as usage

# A full batch of 1,000 events with some metadata each fits well within this.
MAX_BODY_BYTES = 8 * 1024 * 1024


@bp.post("/usage")
@api_key_required
def record_usage() -> Response:
    """Store 1 to 1,000 usage events of the key's connection; Polar gets them in the background."""
    request.max_content_length = MAX_BODY_BYTES
    body = _body()
    if isinstance(body, Response):
        return body
    try:
        events = usage.usage_request(body)
    except InvalidRequest as exc:
        return _polar_error(exc)
    key = current_key()
    session = db_session()
    try:
        connection = usage.usage_connection(session, settings(), current_connection(), key.environment)
    except NotReady as exc:
        session.rollback()
        return error_response(409, "not_ready", str(exc))
    except PermissionsUpgrade as exc:
        session.rollback()
        return _polar_error(exc)
    recorded = usage.record(session, settings(), connection, events, api_key_id=key.id)
    session.commit()  # durable now; the ingest job is nudged after this commit
    response = _json(recorded.as_json())
    response.status_code = 202
    return response


@bp.get("/usage/<path:external_id>")
@api_key_required
def usage_event(external_id: str) -> Response:
    """One usage event of the key's connection, and whether it reached Polar."""
    key = current_key()
    session = db_session()
    try:
        event = usage.find(session, key.workspace_id, key.environment, external_id)
        if event is None:
            return error_response(
                404, "unknown_usage_event", f"This connection has no usage event {external_id!r}."
            )
        return _json(usage.describe(event))
    finally:
        session.rollback()
