"""Recording what people do. ``record`` adds the row to the caller's transaction, so the action and
its audit row are committed (or rolled back) together: never one without the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from provisioning.audit import repository
from provisioning.audit.models import AuditEvent

# Keys whose values never go into an audit row, however a caller names them.
SECRET_KEYS = ("token", "secret", "password", "code", "state", "verifier", "authorization")


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where (the web layer fills it from the request)."""

    user_id: str | None
    email: str | None
    request_id: str | None = None
    client_address: str | None = None


SYSTEM = Actor(user_id=None, email=None)


def _clean(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if any(word in key.lower() for word in SECRET_KEYS):
            continue
        out[key] = _clean(value) if isinstance(value, dict) else value
    return out


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    workspace_id: str | None = None,
    targets: dict[str, Any] | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit row to ``session``'s transaction (flushed, not committed)."""
    return repository.add(
        session,
        AuditEvent(
            actor_id=actor.user_id,
            actor_email=actor.email,
            action=action,
            workspace_id=workspace_id,
            target_ids=_clean(targets or {}),
            reason=(reason or None),
            request_id=actor.request_id,
            client_address=actor.client_address,
            details=_clean(details or {}),
        ),
    )
