"""The tenant API's errors: ``{"error": {"code", "message"}}`` with the matching status, for every
URL under ``/api/`` (unknown routes and wrong methods included: those never reach a blueprint)."""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

PREFIX = "/api/"
NO_STORE = "no-store"
# HTTP statuses the app may raise under /api/, as the error codes the document lists.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "not_ready",
    413: "request_too_large",
    429: "rate_limited",
    500: "internal_error",
}
MESSAGES = {
    404: "There is no such endpoint. The API's endpoints are listed at /api/v1/openapi.json.",
    405: "This endpoint does not answer that method.",
    500: "Something went wrong on our side. Try again; if it keeps happening, contact support.",
}


def is_api_path(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


def is_api_request() -> bool:
    return is_api_path(request.path)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    response.headers["Cache-Control"] = NO_STORE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(exc: HTTPException) -> Response:
    """A werkzeug/Flask HTTP error raised under /api/, as the API's JSON error."""
    status = exc.code or 500
    message = MESSAGES.get(status) or exc.description or exc.name
    headers = {}
    valid = getattr(exc, "valid_methods", None)
    if status == 405 and valid:
        headers["Allow"] = ", ".join(sorted(valid))
    return error_response(status, CODES.get(status, "error"), message, headers)
