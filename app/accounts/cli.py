"""``flask users create``, ``flask workspaces create`` and ``flask seed-demo``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.accounts import service
from app.database import db_session, settings

DEMO_EMAIL = "owner@connect-polar.local"
DEMO_PASSWORD = "connect-polar-demo"
DEMO_WORKSPACE = "Demo workspace"

users_cli = AppGroup("users", help="Manage users.")
workspaces_cli = AppGroup("workspaces", help="Manage workspaces.")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--staff", is_flag=True, help="Support staff: may use the admin pages.")
def create_user(email: str, password: str, staff: bool) -> None:
    """Create a user."""
    db = db_session()
    try:
        user = service.create_user(db, email, password, staff=staff)
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    click.echo(f"created user {user.email} ({user.id}){' [staff]' if staff else ''}")


@workspaces_cli.command("create")
@click.argument("name")
@click.option("--owner", "owner_email", required=True, help="Email of an existing user.")
def create_workspace(name: str, owner_email: str) -> None:
    """Create a workspace owned by a user; prints the workspace id."""
    db = db_session()
    owner = service.find_user(db, owner_email)
    if owner is None:
        raise click.ClickException(f"no user with the email {owner_email}")
    try:
        workspace = service.create_workspace(db, name, owner)
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    click.echo(workspace.id)


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Create the demo owner and workspace if missing (idempotent) and print the login."""
    if settings().is_production:
        raise click.ClickException("seed-demo is for development: refused in production")
    db = db_session()
    owner = service.find_user(db, DEMO_EMAIL) or service.create_user(db, DEMO_EMAIL, DEMO_PASSWORD)
    if not any(ws.name == DEMO_WORKSPACE for ws, _ in service.workspaces_of(db, owner)):
        service.create_workspace(db, DEMO_WORKSPACE, owner)
    db.commit()
    click.echo(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(workspaces_cli)
    app.cli.add_command(seed_demo)
