"""Hold the tenant API's responses to its OpenAPI document (``app.api.openapi.DOCUMENT``).

``validate(response, "GET", "/plans")`` finds the operation, the response its status declares (or
``default``), checks that the response's media type is one it lists and validates the body against
its schema with a Draft 2020-12 validator (``$ref``s resolve against the whole document), and the
headers it declares. ``validate(response)`` holds a response to no operation (an unknown route) to
the Error schema. Both raise :class:`SpecError` listing every violation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from app.api.openapi import DOCUMENT

URI = "urn:connect-polar:tenant-api"


class SpecError(AssertionError):
    """A response the document does not describe."""


@cache
def _registry() -> Registry:
    return Registry().with_resource(URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012))


def validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{URI}#{pointer}"}, registry=_registry())


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _check(pointer: str, value: Any, what: str) -> None:
    errors = sorted(validator(pointer).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:20]
        ]
        raise SpecError(f"{what} does not match the document:\n" + "\n".join(lines))


def _resolve(node: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
    """Follow a local ``$ref`` (one level: the document's responses refer to components)."""
    ref = node.get("$ref")
    if not ref:
        return node, pointer
    assert ref.startswith("#/"), ref
    target: Any = DOCUMENT
    for token in ref[2:].split("/"):
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return target, ref[1:]


def validate(response: TestResponse, method: str | None = None, path: str | None = None) -> None:
    status = response.status_code
    what = f"{method} {path} {status}" if path else f"{status} (no operation)"
    if path is None:
        if response.mimetype != "application/json":
            raise SpecError(f"{what}: {response.mimetype}, not JSON")
        _check("/components/schemas/Error", response.get_json(), what)
        return
    assert method is not None
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower())
    if operation is None:
        raise SpecError(f"{method} {path} is not in the document")
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default" if "default" in responses else None
    if key is None:
        raise SpecError(f"{what}: the document declares no such status ({sorted(responses)})")
    pointer = f"/paths/{_escape(path)}/{method.lower()}/responses/{key}"
    declared, pointer = _resolve(responses[key], pointer)
    content = declared.get("content", {})
    if response.mimetype not in content:
        raise SpecError(f"{what}: {response.mimetype} is not one of {sorted(content)}")
    body: Any = (
        response.get_json() if response.mimetype == "application/json" else response.get_data(as_text=True)
    )
    _check(f"{pointer}/content/{_escape(response.mimetype)}/schema", body, what)
    for name, header in declared.get("headers", {}).items():
        header, header_pointer = _resolve(header, f"{pointer}/headers/{_escape(name)}")
        value = response.headers.get(name)
        if value is None:
            raise SpecError(f"{what}: the header {name} is declared but missing")
        schema_type = header.get("schema", {}).get("type")
        _check(
            f"{header_pointer}/schema", int(value) if schema_type == "integer" else value, f"{what} {name}"
        )
