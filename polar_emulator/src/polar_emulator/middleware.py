"""One ASGI middleware for what Polar does around every call, plus the emulator's faults.

Order: request log (outermost) → fault injection → rate limit → Polar-Version → the app.
The control API under ``/_emulator/`` is never faulted, limited or logged.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polar_emulator.domain.store import Store

SUPPORTED_VERSIONS = ("2026-04", "2026-10")
DEFAULT_VERSION = "2026-04"
# Request log times are milliseconds on this process's clock (``started_ms``): only differences mean
# anything, e.g. which calls overlapped.
_EPOCH = time.perf_counter()
_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_simple(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _fault_response(fault: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    status = int(fault["status"])
    headers: list[tuple[bytes, bytes]] = []
    if status == 429:
        # Polar's 429: an empty body and Retry-After, nothing else.
        headers.append((b"retry-after", str(fault.get("retry_after") or 60).encode()))
        return status, b"", headers
    if fault.get("retry_after") is not None:
        headers.append((b"retry-after", str(fault["retry_after"]).encode()))
    headers.append((b"content-type", b"text/plain; charset=utf-8"))
    return status, _STATUS_TEXT.get(status, "Error").encode(), headers


class PolarMiddleware:
    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    def _match_fault(self, method: str, path: str, when: str) -> dict[str, Any] | None:
        for fault in self.store.faults:
            if fault.get("when", "before") != when:
                continue
            if fault.get("method") and fault["method"].upper() != method:
                continue
            if not fnmatch.fnmatchcase(path, fault["path"]):
                continue
            if fault.get("count") is not None and fault["count"] <= 0:
                continue
            if fault.get("rate") is not None and random.random() >= float(fault["rate"]):
                continue
            if fault.get("count") is not None:
                fault["count"] -= 1
            fault["hits"] = fault.get("hits", 0) + 1
            return fault
        return None

    def _rate_limited(self, scope: Scope) -> bool:
        limit = self.store.rate_limit_per_minute
        if not limit:
            return False
        auth = _header(scope, b"authorization") or ""
        token = self.store.tokens_by_access.get(auth.partition(" ")[2].strip())
        if token is None:
            return False
        window = int(self.store.clock.time() // 60)
        start, count = self.store.rate_windows.get(token.client_id, (window, 0))
        if start != window:
            start, count = window, 0
        count += 1
        self.store.rate_windows[token.client_id] = (start, count)
        return count > limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        scope["emulator"] = {"client_id": None, "organization_id": None}
        status_seen = {"status": 0}

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, logged_send, method, path)
        finally:
            facts = scope["emulator"]
            self.store.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "client": facts.get("client_id"),
                    "organization": facts.get("organization_id"),
                    "status": status_seen["status"],
                    "started_ms": round((started - _EPOCH) * 1000, 3),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                }
            )

    async def _handle(self, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        fault = self._match_fault(method, path, "before")
        if fault is not None:
            if fault.get("latency_ms"):
                await asyncio.sleep(float(fault["latency_ms"]) / 1000)
            if fault.get("status"):
                await _send_simple(send, *_fault_response(fault))
                return
        if path.startswith("/v1") and self._rate_limited(scope):
            await _send_simple(send, 429, b"", [(b"retry-after", b"60")])
            return

        version = _header(scope, b"polar-version")
        if path.startswith("/v1") and version is not None and version not in SUPPORTED_VERSIONS:
            body = json.dumps({"detail": "Not Found"}).encode()
            await _send_simple(send, 404, body, [(b"content-type", b"application/json")])
            return
        version = version or DEFAULT_VERSION

        after = self._match_fault(method, path, "after")
        held = {"done": False}

        async def decorated_send(message: Message) -> None:
            if after is not None and after.get("latency_ms") and not held["done"]:
                # The call took effect; its response is held back (the caller waits, or gives up).
                held["done"] = True
                await asyncio.sleep(float(after["latency_ms"]) / 1000)
            if after is not None and after.get("status"):
                # The call took effect, but the caller sees a failure (a lost response).
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    await _send_simple(send, *_fault_response(after))
                return
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"polar-version", version.encode()))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"private, no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, decorated_send)
