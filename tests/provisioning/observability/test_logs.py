"""The structured logs' redaction: secret keys and secret-looking text never reach a sink."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from provisioning.observability import logs


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    """This process's logging through the platform's handler into a buffer (JSON), then restored."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    yield stream
    logs.clear()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_keys_and_secret_looking_text_are_redacted(sink: io.StringIO) -> None:
    log = logs.get_logger("test")
    log.info(
        "exchanging polar_oat_AbCdEf123456 at https://user:hunter2@db.example/x?code=CODE123&state=ST456",
        access_token="polar_oat_secret",
        refresh_token="rt",
        client_secret="cs",
        code="the-code",
        state="the-state",
        headers={"Authorization": "Bearer abcdef", "Accept": "json"},
        status_code=200,
    )
    logging.getLogger("plain").info(
        "GET /polar/callback?code=C0DE&state=S7ATE HTTP/1.1 with whsec_Zm9vYmFy and gAAAAABlAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    logging.getLogger("plain").info("POST /polar/webhooks/abcDEF123 HTTP/1.1 Bearer xyz.123")
    text = sink.getvalue()
    for secret in (
        "AbCdEf123456", "hunter2", "CODE123", "ST456", "polar_oat_secret", '"rt"', '"cs"', "the-code",
        "the-state", "abcdef", "C0DE", "S7ATE", "Zm9vYmFy", "gAAAAABl", "abcDEF123", "xyz.123",
    ):  # fmt: skip
        assert secret not in text, secret
    first, second, third = lines(sink)
    assert first["status_code"] == 200 and first["headers"]["Accept"] == "json"
    assert first["access_token"] == logs.REDACTED
    assert "GET /polar/callback HTTP/1.1" in second["event"]
    assert "/polar/webhooks/[redacted]" in third["event"]


def test_lines_carry_the_bound_ids_and_a_traceback_is_redacted_too(sink: io.StringIO) -> None:
    logs.bind(request_id="req-123456", workspace_id="ws-1", run_id=None)
    try:
        raise ValueError("bad token polar_rt_abcdefgh1234")
    except ValueError:
        logging.getLogger("plain").exception("failed")
    logs.clear()
    logging.getLogger("plain").info("after")
    failed, after = lines(sink)
    assert failed["request_id"] == "req-123456" and failed["workspace_id"] == "ws-1"
    assert "run_id" not in failed
    assert "ValueError" in failed["exception"] and "polar_rt_abcdefgh1234" not in failed["exception"]
    assert "request_id" not in after


def test_console_format_is_readable(sink: io.StringIO) -> None:
    stream = io.StringIO()
    logs.configure("console", stream=stream)
    logs.bind(run_id="run-1")
    logging.getLogger("connect_polar.worker").info("outbox: enqueued %d run(s)", 2, extra={"token": "t0k3n"})
    text = stream.getvalue()
    assert "outbox: enqueued 2 run(s)" in text and "run_id=run-1" in text
    assert "t0k3n" not in text
    with pytest.raises(ValueError):
        logs.configure("xml")


def test_api_keys_keep_only_what_the_billing_page_shows(sink: io.StringIO) -> None:
    secret = "Zx9_-" + "a" * 38
    logging.getLogger("plain").info(f"a tenant sent cp_live_abcdefghijk1_{secret} in a query string")
    text = sink.getvalue()
    assert secret not in text
    assert "cp_live_abcdefghijk1_[redacted]" in lines(sink)[0]["event"]
