"""Structured logs (structlog over the standard library's logging) for every process: the web
(under gunicorn, or ``flask run``), the worker and every ``flask`` command.

One handler on the root logger renders every line, ours (structlog or plain ``logging``) and the
libraries' (gunicorn, werkzeug, RQ, httpx): JSON in production (or with ``LOG_FORMAT=json``), a
readable line in development. Each line carries the context bound with
``structlog.contextvars`` (the web binds the request id and the workspace id from the URL, a job its
run, integration and workspace) and passes :func:`redact` last, which drops tokens, codes, secrets
and the OAuth callback's query string whatever logged them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor

LOG_FORMATS = ("json", "console")
REDACTED = "[redacted]"
# Keys whose values are never written, whoever logged them (compared lower-cased).
SECRET_KEYS = frozenset(
    {
        "code",
        "state",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "secret",
        "client_secret",
        "webhook_secret",
        "password",
        "authorization",
        "cookie",
        "set-cookie",
        "code_verifier",
        "verifier",
        "api_key",
        "secret_key",
        "signature",
        "webhook-signature",
    }
)
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_key", "_verifier")
_PARAMS = "code|state|token|access_token|refresh_token|id_token|client_secret|code_verifier|secret|password"
SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\x1b\[[0-9;]*m"), ""),  # terminal colours (werkzeug's access line)
    # The OAuth callback's query string (code and state) goes altogether, names included.
    (re.compile(r"(/polar/callback[^\s?\"']*)\?[^\s\"']*"), r"\1"),
    # A webhook endpoint's path token is its URL's secret part.
    (re.compile(r"(/polar/webhooks/)[^\s/?\"']+"), rf"\1{REDACTED}"),
    # Any other URL's or form's sensitive parameters keep their name, lose their value.
    (re.compile(rf"(?i)([?&;\s\"']|^)({_PARAMS})=[^&\s\"';]*"), rf"\1\2={REDACTED}"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\bpolar_[a-z]{2,4}_[A-Za-z0-9_-]{6,}"), REDACTED),  # Polar's tokens and client secrets
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), REDACTED),  # webhook secrets
    # The tenant API's keys keep what the billing page shows of them (cp_test_<lookup id>).
    (re.compile(r"\b(cp_(?:test|live)_[a-z0-9]{12})_[A-Za-z0-9_-]+"), rf"\1_{REDACTED}"),
    (re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{20,}"), REDACTED),  # Fernet ciphertexts
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),  # passwords in URLs
)


def _secret_key(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES)


# Text none of SCRUBS can change contains none of these (each pattern needs one of them): most
# lines are scrubbed with this one search instead of every pattern's.
_MIGHT_SCRUB = re.compile(r"(?i)\x1b|/polar/|=|bearer|polar_|whsec_|cp_test_|cp_live_|gaaaaa|://")


def scrub(text: str) -> str:
    if _MIGHT_SCRUB.search(text) is None:
        return text
    for pattern, replacement in SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _secret_key(k) else _clean(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """The last processor before rendering: secret keys' values and secret-looking text go."""
    for key in list(event_dict):
        if key.startswith("_"):
            continue
        if _secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _clean(event_dict[key])
    return event_dict


def _drop_color_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]


def formatter(log_format: str = "console") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: also gunicorn's (``logconfig_dict`` names it by path)."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # a traceback is text to redact like any other
            redact,
            renderer,
        ],
    )


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return formatter("json")


def console_formatter() -> structlog.stdlib.ProcessorFormatter:
    return formatter("console")


def configure(
    log_format: str = "console", *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route every log line of this process through one structured handler (idempotent: a second
    call replaces the handler, e.g. in a gunicorn worker after the master's)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in root.handlers[:]:  # the root's one handler is ours (gunicorn's logconfig_dict set one)
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings after this point are log lines too
    # Libraries that would print lines of their own beside ours.
    logging.getLogger("werkzeug").handlers.clear()
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def gunicorn_logconfig(log_format: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access logs through the same formatter."""
    factory = f"{__name__}.{'json' if log_format == 'json' else 'console'}_formatter"
    handler = {"class": "logging.StreamHandler", "formatter": "structured", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": factory}},
        "handlers": {"structured": handler},
        "root": {"level": "INFO", "handlers": ["structured"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["structured"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["structured"], "propagate": False},
        },
    }


def bind(**values: Any) -> None:
    """Add ids (request, workspace, integration, run) to every later line of this context."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
