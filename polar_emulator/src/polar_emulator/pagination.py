"""Polar's page/limit pagination: ``{"items", "pagination": {"total_count", "max_page"}}``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from polar_emulator.errors import ApiError, validation_item

MAX_LIMIT = 100


def page_params(request: Request) -> tuple[int, int]:
    """Read ``page`` and ``limit``; 0 or negatives are a 422, ``limit`` over 100 is clamped."""
    errors = []
    values = {}
    for name, default in (("page", 1), ("limit", 10)):
        raw = request.query_params.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            errors.append(
                validation_item(
                    ["query", name],
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                    raw,
                )
            )
            continue
        if value <= 0:
            errors.append(
                validation_item(["query", name], "Input should be greater than 0", "greater_than", raw)
            )
        values[name] = value
    if errors:
        raise ApiError(422, {"error": "RequestValidationError", "detail": errors})
    return values["page"], min(values["limit"], MAX_LIMIT)


def paginate(request: Request, items: Sequence[Any]) -> dict:
    page, limit = page_params(request)
    total = len(items)
    start = limit * (page - 1)
    return {
        "items": list(items[start : start + limit]),
        "pagination": {"total_count": total, "max_page": math.ceil(total / limit) if total else 0},
    }
