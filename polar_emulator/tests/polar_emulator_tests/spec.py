"""Validate emulator responses against Polar's OpenAPI document (API version 2026-10).

``validate_response("GET", "/v1/products/{id}", 200, body)`` finds the operation, takes the JSON
schema of that status (or of ``default``) and validates ``body`` with a Draft 2020-12 validator;
``$ref``s resolve against the whole document. ``validate_schema("WebhookProductCreatedPayload",
obj)`` validates against one ``components.schemas`` entry. Both raise :class:`SpecError` with
every violation listed. The document is the emulator's own copy (:mod:`polar_emulator.spec`),
loaded once per process.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from polar_emulator.spec import API_VERSION, openapi_document

_URI = f"urn:polar:openapi-{API_VERSION}"


class SpecError(AssertionError):
    """A body that does not match Polar's schema, or an operation the spec lacks."""


def spec() -> dict[str, Any]:
    """The whole document (the emulator's copy; do not change it)."""
    return openapi_document()


@cache
def _registry() -> Registry:
    return Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _validator(pointer: str) -> Draft202012Validator:
    # A schema that only refers into the document, so every nested $ref ("#/components/...")
    # resolves against the whole spec.
    return Draft202012Validator({"$ref": f"{_URI}#{pointer}"}, registry=_registry())


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _check(validator: Draft202012Validator, body: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for error in errors[:20]:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        lines.append(f"  at {where}: {error.message[:300]}")
        for sub in sorted(error.context or [], key=lambda e: e.relevance)[:3]:
            sub_where = "/".join(str(p) for p in sub.absolute_path) or "<root>"
            lines.append(f"      ({sub_where}: {sub.message[:200]})")
    raise SpecError(f"{what} does not match Polar's schema ({len(errors)} errors):\n" + "\n".join(lines))


def validate_response(method: str, path_template: str, status: int, body: Any) -> None:
    """Validate a response body for ``method path_template`` answered with ``status``."""
    method = method.lower()
    operation = spec()["paths"].get(path_template, {}).get(method)
    if operation is None:
        raise SpecError(f"{method.upper()} {path_template} is not in the spec")
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default" if "default" in responses else None
    if key is None:
        raise SpecError(
            f"{method.upper()} {path_template} declares no {status} response (has {sorted(responses)})"
        )
    content = responses[key].get("content")
    if not content:
        if body not in (None, b"", ""):
            raise SpecError(
                f"{method.upper()} {path_template} {status} has no body in the spec, got {body!r:.200}"
            )
        return
    if "application/json" not in content:
        raise SpecError(f"{method.upper()} {path_template} {status} is not JSON in the spec")
    pointer = "/".join(
        [
            "",
            "paths",
            _escape(path_template),
            method,
            "responses",
            key,
            "content",
            "application~1json",
            "schema",
        ]
    )
    _check(_validator(pointer), body, f"{method.upper()} {path_template} {status}")


def validate_schema(name: str, obj: Any) -> None:
    """Validate ``obj`` against ``components.schemas[name]``."""
    if name not in spec()["components"]["schemas"]:
        raise SpecError(f"no schema {name!r} in the spec")
    _check(_validator(f"/components/schemas/{_escape(name)}"), obj, name)
