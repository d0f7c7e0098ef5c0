"""Who is acting, as the audit trail records it: the signed-in user (or the email being tried),
the request id and the client address."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from app.requests import request_id
from provisioning.audit.service import Actor


def current_actor(email: str | None = None) -> Actor:
    """The signed-in user; ``email`` names an actor who is not signed in (a failed sign-in)."""
    if current_user.is_authenticated:
        return Actor(current_user.id, current_user.email, request_id(), request.remote_addr)
    return Actor(None, email, request_id(), request.remote_addr)
