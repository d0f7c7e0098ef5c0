"""What event forwarding's tests share: a tenant's app on a real port that records what it
receives and answers as told, and processed Polar events to forward."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from provisioning.ids import new_id
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class TenantApp:
    """The tenant's endpoint: records every request; answers 200, or each status queued by
    :meth:`answer_next` first."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: deque[int] = deque()
        self._lock = threading.Lock()
        self.url = ""

    def answer_next(self, *statuses: int) -> None:
        with self._lock:
            self._answers.extend(statuses)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.received.append(
                Received(request.path, {k.lower(): v for k, v in request.headers.items()}, request.get_data())
            )
            status = self._answers.popleft() if self._answers else 200
        return Response("ok" if status < 300 else "no", status=status)(environ, start_response)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Until ``count`` requests arrived (polled, with a deadline); then all of them."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} requests arrived"
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def tenant_app() -> Iterator[TenantApp]:
    """A :class:`TenantApp` served on a free loopback port (a thread), at ``.url`` + ``/hooks``."""
    app = TenantApp()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.url = f"http://127.0.0.1:{server.server_port}/hooks"
    thread = threading.Thread(target=server.serve_forever, name="tenant-app", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def processed_event(
    session: Session, integration_id: str, event_type: str = "subscription.active", **data: Any
) -> tuple[PolarWebhookEvent, dict[str, Any]]:
    """A Polar event, recorded and processed, and the normalized payload billing forwards."""
    event = PolarWebhookEvent(
        integration_id=integration_id,
        webhook_id=f"msg_{new_id()}",
        event_type=event_type,
        payload={"type": event_type, "data": {"id": new_id(), **data}},
        status=EventStatus.PROCESSED,
    )
    session.add(event)
    session.flush()
    payload = {
        "id": event.id,
        "type": event_type,
        "timestamp": "2026-12-02T10:00:00Z",
        "customer_external_id": "tenant-user-1",
        "plan": "pro-monthly",
        "status": "active",
        "data": event.payload["data"],
    }
    return event, payload
