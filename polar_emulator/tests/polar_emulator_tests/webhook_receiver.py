"""A tiny real HTTP server that records webhook deliveries and answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() when the request arrived


class Receiver:
    """Records every POST. By default answers 200; ``fail(n)`` answers 500 to the next n requests,
    ``fail_always()`` to all, and ``respond`` (body -> (status, delay seconds)) overrides both."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failures_left = 0
        self.always_status: int | None = None
        self.respond: Callable[[str], tuple[int, float]] | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                status, delay = receiver._decide(body)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                        )
                    )
                if delay:
                    time.sleep(delay)
                reply = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _decide(self, body: str) -> tuple[int, float]:
        if self.respond is not None:
            return self.respond(body)
        with self._lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                return 500, 0.0
        return (self.always_status or 200), 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def fail(self, times: int) -> None:
        self.failures_left = times

    def fail_always(self, status: int = 500) -> None:
        self.always_status = status

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(
    condition: Callable[[], object], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
