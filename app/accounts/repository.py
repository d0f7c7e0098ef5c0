"""Queries on ``users``, ``workspace``, ``membership`` and ``user_session``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import Membership, Role, User, UserSession, Workspace


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def membership(session: Session, workspace_id: str, user_id: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
    )


def workspaces_of(session: Session, user_id: str) -> list[tuple[Workspace, Role]]:
    rows = session.execute(
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
        .order_by(Workspace.name)
    )
    return [(ws, role) for ws, role in rows]


def user_session(session: Session, session_id: str) -> UserSession | None:
    return session.get(UserSession, session_id)
