"""Users, workspaces and memberships. Flushes only: callers (handlers, CLI) commit."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from app.accounts import repository
from app.accounts.models import Membership, Role, User, UserSession, Workspace
from app.accounts.passwords import hash_password, needs_rehash, verify_password
from provisioning.db import utcnow


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message can be shown."""


class EmailTaken(AccountError):
    """An account with this email exists: fine to tell an operator, never a visitor."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user(session: Session, email: str) -> User | None:
    return repository.user_by_email(session, normalise_email(email))


def create_user(session: Session, email: str, password: str, *, staff: bool = False) -> User:
    email = normalise_email(email)
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address")
    if len(password) < 8:
        raise AccountError("the password needs at least 8 characters")
    password_hash = hash_password(password)  # before the lookup: a taken email takes as long
    if find_user(session, email) is not None:
        raise EmailTaken(f"a user with the email {email} already exists")
    user = User(email=email, password_hash=password_hash, staff=staff)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = find_user(session, email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    assert user is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def create_workspace(session: Session, name: str, owner: User) -> Workspace:
    name = name.strip()
    if not name:
        raise AccountError("the workspace needs a name")
    workspace = Workspace(name=name)
    session.add(workspace)
    session.add(Membership(workspace=workspace, user=owner, role=Role.OWNER))
    session.flush()
    return workspace


def add_member(session: Session, workspace: Workspace, user: User, role: Role = Role.MEMBER) -> Membership:
    membership = Membership(workspace=workspace, user=user, role=role)
    session.add(membership)
    session.flush()
    return membership


def membership(session: Session, workspace_id: str, user_id: str) -> Membership | None:
    return repository.membership(session, workspace_id, user_id)


def workspaces_of(session: Session, user: User) -> list[tuple[Workspace, Role]]:
    return repository.workspaces_of(session, user.id)


def open_session(session: Session, user: User) -> str:
    """A new signed-in browser session for ``user``; returns its id for the cookie."""
    user_session = UserSession(id=secrets.token_urlsafe(32), user_id=user.id)
    session.add(user_session)
    session.flush()
    return user_session.id


def session_user(session: Session, session_id: str | None, user_id: str) -> User | None:
    """The user of a live (not revoked) browser session, or None."""
    if not session_id:
        return None
    user_session = repository.user_session(session, session_id)
    if user_session is None or user_session.revoked_at is not None or user_session.user_id != user_id:
        return None
    return repository.user(session, user_id)


def close_session(session: Session, session_id: str | None) -> None:
    user_session = repository.user_session(session, session_id) if session_id else None
    if user_session is not None and user_session.revoked_at is None:
        user_session.revoked_at = utcnow()
        session.flush()
