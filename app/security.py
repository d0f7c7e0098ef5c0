"""Security headers on every response, bad input refused before any view, and safe redirect targets.

Polar's webhook deliveries never reach these hooks: ``app.polar.webhooks`` answers them (and reads
their signed bodies) itself, with an API's security headers."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, Response, abort, request

HSTS = "max-age=63072000; includeSubDomains"  # production: HTTPS only, for two years
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
# Undecodable bytes reach a view either as U+FFFD or as a literal "%FF", depending on the parser.
REPLACEMENT = "\ufffd"


def _unusable(values: Iterable[tuple[str, str]]) -> bool:
    """A NUL byte or a replaced undecodable byte in any name or value: never valid input, and a NUL
    breaks PostgreSQL text columns (a 500 whose traceback would carry the whole form)."""
    return any("\x00" in text or REPLACEMENT in text for pair in values for text in pair)


def _undecodable(urlencoded: bytes) -> bool:
    """Whether an urlencoded string holds bytes (raw or percent-escaped) that are not UTF-8."""
    try:
        unquote_to_bytes(urlencoded.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def refuse_bad_input() -> None:
    """Before any view (and before CSRF checks read the form): 400 for such a query or form."""
    if _undecodable(request.query_string) or _unusable(request.args.items(multi=True)):
        abort(400, "The request contains characters that are not allowed.")
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or request.mimetype not in FORM_TYPES:
        return
    # Read once and cached: the form is parsed from the same bytes afterwards.
    if request.mimetype == "application/x-www-form-urlencoded" and _undecodable(request.get_data(cache=True)):
        abort(400, "The form contains characters that are not allowed.")
    if _unusable(request.form.items(multi=True)):
        abort(400, "The form contains characters that are not allowed.")


def content_security_policy(*polar_web_urls: str) -> str:
    """No inline scripts or styles. ``form-action`` names Polar because browsers check it on the
    redirect that follows the Connect Polar form."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            " ".join(["form-action 'self'", *polar_web_urls]),
        ]
    )


def init_app(
    app: Flask, polar_web_urls: list[str], callback_paths: set[str], *, https_only: bool = False
) -> None:
    csp = content_security_policy(*polar_web_urls)
    # First of all before_request functions: the CSRF check must not be the one to trip on it.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_bad_input)

    @app.after_request
    def _headers(response: Response) -> Response:
        if request.endpoint != "static":
            # Pages show connection data, forms carry CSRF tokens: nothing dynamic is ever cached.
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # The callback's URL carries the code and state: never leak it as a referrer.
        on_callback = request.path in callback_paths
        response.headers.setdefault("Referrer-Policy", "no-referrer" if on_callback else "same-origin")
        if on_callback:
            response.headers["Cache-Control"] = "no-store"
        if https_only:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return default
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return default
    return target
