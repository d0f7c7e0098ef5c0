"""``flask users create``, ``flask workspaces create`` and ``flask seed-demo``."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.cli import DEMO_EMAIL, DEMO_PASSWORD
from app.accounts.models import Membership, User, Workspace


def test_users_create_and_workspaces_create(app: Flask, session: Session) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "Staff@Example.com", "--password", "s3cret-pass", "--staff"]
    )
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User).where(User.email == "staff@example.com"))
    assert user is not None and user.staff

    result = runner.invoke(args=["workspaces", "create", "Acme", "--owner", "staff@example.com"])
    assert result.exit_code == 0, result.output
    workspace = session.get(Workspace, result.output.strip())
    assert workspace is not None and workspace.name == "Acme"
    assert workspace.memberships[0].role == "owner"


def test_users_create_refuses_duplicates_and_workspaces_need_a_known_owner(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert (
        runner.invoke(args=["users", "create", "a@example.com", "--password", "s3cret-pass"]).exit_code == 0
    )
    again = runner.invoke(args=["users", "create", "a@example.com", "--password", "s3cret-pass"])
    assert again.exit_code == 1 and "already exists" in again.output
    missing = runner.invoke(args=["workspaces", "create", "X", "--owner", "nobody@example.com"])
    assert missing.exit_code == 1 and "no user" in missing.output


def test_seed_demo_is_idempotent(app: Flask, session: Session) -> None:
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
        assert DEMO_EMAIL in result.output and DEMO_PASSWORD in result.output
    count = session.scalar(
        select(func.count()).select_from(Membership).join(User).where(User.email == DEMO_EMAIL)
    )
    assert count == 1
