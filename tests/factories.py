"""The one set of builders the tests use for accounts: users, workspaces and owners.

Each builder flushes; the caller commits (or builds inside ``database.transaction()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.accounts import service
from app.accounts.models import Role, User, Workspace

PASSWORD = "correct horse battery"
# A stored hash no password matches: for users who never sign in (no Argon2 work to build them).
CANNOT_SIGN_IN = "!"


@dataclass(frozen=True)
class Owner:
    user_id: str
    workspace_id: str


def make_user(session: Session, email: str, *, password: str | None = None, staff: bool = False) -> User:
    """A user; with ``password`` through the sign-up service (hashed), else one who never signs in."""
    if password is not None:
        return service.create_user(session, email, password, staff=staff)
    user = User(email=service.normalise_email(email), password_hash=CANNOT_SIGN_IN, staff=staff)
    session.add(user)
    session.flush()
    return user


def make_workspace(session: Session, name: str, owner: User, members: Iterable[User] = ()) -> Workspace:
    workspace = service.create_workspace(session, name, owner)
    for member in members:
        service.add_member(session, workspace, member, Role.MEMBER)
    return workspace


def make_owner(
    session: Session, name: str = "Acme Workspace", *, email: str | None = None, password: str | None = None
) -> Owner:
    """A workspace and its owner."""
    email = email or f"{name.lower().replace(' ', '.')}@example.test"
    user = make_user(session, email, password=password)
    workspace = make_workspace(session, name, user)
    return Owner(user.id, workspace.id)


# Polar's shared rate budget in tests: high enough never to pace an ordinary test (each test has an
# empty Redis); the budget's own tests set their limits.
TEST_RATE_LIMIT = 100_000
