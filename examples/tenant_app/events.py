"""The billing events Connect Polar forwards to ExampleNotes: verified (Standard Webhooks, with the
workspace's ``whsec_…`` secret), then kept, the latest few hundred, in a small SQLite file.

An event is ``{"id", "type", "timestamp", "customer_external_id", "plan", "status", "data"}``; the
platform may deliver one more than once (a retry after a lost answer), so each is kept once by id.
"""

from __future__ import annotations

import binascii
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

KEEP = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    timestamp TEXT,
    customer_external_id TEXT,
    plan TEXT,
    status TEXT,
    data TEXT NOT NULL,
    received_at TEXT NOT NULL
)
"""


class BadSignature(Exception):
    """The request is not signed with the secret: not from the platform, or not this workspace's."""


class BadEvent(Exception):
    """Signed, but not an event ExampleNotes understands."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    timestamp: str | None
    customer_external_id: str | None
    plan: str | None
    status: str | None
    data: dict[str, Any]
    received_at: str = ""

    @property
    def summary(self) -> str:
        """``subscription.active for plan pro-monthly``."""
        text = self.type
        if self.plan:
            text += f" for plan {self.plan}"
        return text

    @property
    def received(self) -> str:
        """When it arrived, as ``2026-12-02 10:38:45`` (UTC)."""
        return self.received_at.replace("T", " ").removesuffix("+00:00")

    @property
    def data_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True)


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> Event:
    """The event in ``body`` when its ``webhook-signature`` is the secret's (and its
    ``webhook-timestamp`` within five minutes); :class:`BadSignature` or :class:`BadEvent` if not."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error) as exc:
        raise BadSignature(str(exc) or "bad signature") from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadEvent("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadEvent("the body is not a JSON object")
    for name in ("id", "type"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            raise BadEvent(f"{name} is missing")

    def text(name: str) -> str | None:
        value = payload.get(name)
        return value if isinstance(value, str) else None

    data = payload.get("data")
    return Event(
        id=payload["id"],
        type=payload["type"],
        timestamp=text("timestamp"),
        customer_external_id=text("customer_external_id"),
        plan=text("plan"),
        status=text("status"),
        data=data if isinstance(data, dict) else {},
    )


class EventStore:
    """The latest events, in ``events.sqlite3`` in the app's data directory."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            db.row_factory = sqlite3.Row
            yield db

    def add(self, event: Event) -> bool:
        """Keep ``event``; False when it was already kept (a delivery repeated)."""
        received_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO event VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.type,
                    event.timestamp,
                    event.customer_external_id,
                    event.plan,
                    event.status,
                    json.dumps(event.data),
                    received_at,
                ),
            ).rowcount
            db.execute(
                "DELETE FROM event WHERE id NOT IN "
                "(SELECT id FROM event ORDER BY received_at DESC, rowid DESC LIMIT ?)",
                (self.keep,),
            )
        return added == 1

    def latest(self, limit: int = 50, *, customer: str | None = None) -> list[Event]:
        """The latest events first; only ``customer``'s when given."""
        where, args = ("WHERE customer_external_id = ?", (customer,)) if customer is not None else ("", ())
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM event {where} ORDER BY received_at DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [
            Event(
                id=row["id"],
                type=row["type"],
                timestamp=row["timestamp"],
                customer_external_id=row["customer_external_id"],
                plan=row["plan"],
                status=row["status"],
                data=json.loads(row["data"]),
                received_at=row["received_at"],
            )
            for row in rows
        ]

    def last_for(self, customer: str) -> Event | None:
        found = self.latest(1, customer=customer)
        return found[0] if found else None
