"""Polar's error shapes: ``{"error","detail"}`` for the API, Authlib's for OAuth."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answered as Polar answers it. ``body=None`` means an empty body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def polar_error(status: int, name: str, detail: Any) -> ApiError:
    return ApiError(status, {"error": name, "detail": detail})


def not_found() -> ApiError:
    return polar_error(404, "ResourceNotFound", "Not found")


def not_permitted(detail: str = "You don't have the permission to do this.") -> ApiError:
    return polar_error(403, "NotPermitted", detail)


def validation_item(loc: list[str | int], msg: str, type_: str = "value_error", input_: Any = None) -> dict:
    return {"type": type_, "loc": loc, "msg": msg, "input": input_}


def validation_error(*items: dict) -> ApiError:
    """422 as Polar's own validation (PolarRequestValidationError)."""
    return ApiError(422, {"error": "PolarRequestValidationError", "detail": list(items)})


_INVALID_TOKEN_DESC = (
    "The access token provided is expired, revoked, malformed, or invalid for other reasons."
)


def invalid_token() -> ApiError:
    return ApiError(
        401,
        {"error": "invalid_token", "error_description": _INVALID_TOKEN_DESC},
        {
            "WWW-Authenticate": (
                f'Bearer realm="polar", error="invalid_token", error_description="{_INVALID_TOKEN_DESC}"'
            )
        },
    )


def unauthorized() -> ApiError:
    return ApiError(
        401, {"error": "Unauthorized", "detail": "Unauthorized"}, {"WWW-Authenticate": 'Bearer realm="polar"'}
    )


def insufficient_scope(required: list[str]) -> ApiError:
    desc = "The request requires higher privileges than provided by the access token."
    return ApiError(
        403,
        {"error": "insufficient_scope", "error_description": desc},
        {
            "WWW-Authenticate": (
                f'Bearer realm="polar", error="insufficient_scope", '
                f'error_description="{desc}", scope="{" ".join(required)}"'
            )
        },
    )
