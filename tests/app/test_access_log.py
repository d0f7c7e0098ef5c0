"""The development server's access log (werkzeug, what ``make run`` serves with) through the
platform's logging: the OAuth callback's line shows its path and request id, never its code or state."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
import structlog
from flask import Flask
from werkzeug.serving import make_server

from provisioning.observability import logs


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("console", stream=stream)
    yield stream
    logs.clear()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    structlog.reset_defaults()


def test_the_dev_servers_access_log_shows_no_code_or_state(app: Flask, console_log: io.StringIO) -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/polar/callback?code=SECRET-CODE-1&state=SECRET-STATE-2"
        response = httpx.get(url, follow_redirects=False)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    request_id = response.headers["X-Request-Id"]
    text = console_log.getvalue()
    access = [line for line in text.splitlines() if "/polar/callback" in line]
    assert access, text
    assert "SECRET-CODE-1" not in text and "SECRET-STATE-2" not in text
    assert "code=" not in text and "state=" not in text
    assert request_id in access[0]
