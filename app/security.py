"""Security headers on every response, and safe redirect targets."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request


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

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # The callback's URL carries the code and state: never leak it as a referrer.
        on_callback = request.path in callback_paths
        response.headers.setdefault("Referrer-Policy", "no-referrer" if on_callback else "same-origin")
        if on_callback:
            response.headers["Cache-Control"] = "no-store"
        if https_only:
            response.headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
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
