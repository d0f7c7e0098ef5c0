"""Query-string helpers shared by list endpoints: booleans, enums, sorting, metadata filters.

Errors are 422s shaped like FastAPI's (``loc`` ``["query", name]``), as Polar's are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.requests import Request

from polar_emulator.errors import ApiError, validation_item

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}
_METADATA_KEY = re.compile(r"^metadata\[(.+)\]$")


def _invalid(*items: dict) -> ApiError:
    return ApiError(422, {"error": "RequestValidationError", "detail": list(items)})


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _invalid(
        validation_item(
            ["query", name], "Input should be a valid boolean, unable to interpret input", "bool_parsing", raw
        )
    )


def query_list(request: Request, name: str, allowed: Iterable[str] | None = None) -> list[str]:
    """A repeatable query parameter; with ``allowed``, values outside it are a 422 ``enum``."""
    values = request.query_params.getlist(name)
    if allowed is not None:
        allowed = list(allowed)
        expected = ", ".join(f"'{a}'" for a in allowed)
        bad = [
            validation_item(["query", name, i], f"Input should be {expected}", "enum", v)
            for i, v in enumerate(values)
            if v not in allowed
        ]
        if bad:
            raise _invalid(*bad)
    return values


def metadata_query(request: Request) -> dict[str, list[str]]:
    """``?metadata[key]=value`` pairs (deepObject style); repeated values mean any of them."""
    wanted: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        match = _METADATA_KEY.match(key)
        if match:
            wanted.setdefault(match.group(1), []).append(value)
    return wanted


def metadata_matches(metadata: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    def text(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return all(key in metadata and text(metadata[key]) in values for key, values in wanted.items())


def sort_items(
    request: Request,
    items: Sequence[dict[str, Any]],
    keys: dict[str, Callable[[dict[str, Any]], Any]],
    default: Sequence[str] = ("-created_at",),
) -> list[dict[str, Any]]:
    """Apply ``?sorting=`` criteria in order (``-field`` is descending); unknown fields are a 422."""
    allowed = [p for k in keys for p in (k, f"-{k}")]
    criteria = query_list(request, "sorting", allowed) or list(default)
    result = list(items)
    # Stable sorts applied from the last criterion to the first give a multi-key sort.
    for criterion in reversed(criteria):
        field = criterion.lstrip("-")
        key = keys[field]
        present = [i for i in result if key(i) is not None]
        missing = [i for i in result if key(i) is None]
        present.sort(key=key, reverse=criterion.startswith("-"))
        result = present + missing
    return result
