"""Polar's OpenAPI document for API version 2026-10, the reference the emulator is tested against.

A copy of the document Polar publishes, shipped as package data::

    from polar_emulator.spec import openapi_document

    openapi_document()["paths"]["/v1/products/"]
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

API_VERSION = "2026-10"
FILENAME = f"openapi-{API_VERSION}.json"


@cache
def openapi_document() -> dict[str, Any]:
    """The parsed document, loaded once per process; callers must not change it."""
    document: dict[str, Any] = json.loads(files(__name__).joinpath(FILENAME).read_text(encoding="utf-8"))
    return document
