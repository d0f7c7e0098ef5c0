"""``flask users create``, ``flask workspaces create`` and ``flask seed-demo``."""

from __future__ import annotations

import getpass

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.accounts import service
from app.database import db_session, settings
from provisioning.audit.service import Actor, record

DEMO_EMAIL = "owner@connect-polar.local"
DEMO_PASSWORD = "connect-polar-demo"
DEMO_WORKSPACE = "Demo workspace"
STAFF_EMAIL = "staff@connect-polar.local"
STAFF_PASSWORD = "connect-polar-staff"

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


@users_cli.command("staff")
@click.argument("email")
@click.option("--grant/--revoke", required=True, help="Make the user support staff, or stop it.")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
def staff(email: str, grant: bool, reason: str) -> None:
    """Grant or revoke a user's access to the support console (audited)."""
    db = db_session()
    user = service.find_user(db, email)
    if user is None:
        raise click.ClickException(f"no user with the email {email}")
    if user.staff == grant:
        click.echo(f"{user.email} {'is already' if grant else 'is not'} staff: nothing changed")
        return
    user.staff = grant
    record(
        db,
        Actor(None, f"cli:{getpass.getuser()}"),
        "staff.grant" if grant else "staff.revoke",
        targets={"user_id": user.id},
        reason=reason or None,
        details={"email": user.email},
    )
    db.commit()
    click.echo(f"{user.email} {'is now' if grant else 'is no longer'} staff")


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
    if service.find_user(db, STAFF_EMAIL) is None:
        service.create_user(db, STAFF_EMAIL, STAFF_PASSWORD, staff=True)
    db.commit()
    click.echo(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
    click.echo(f"support console (/admin): {STAFF_EMAIL} / {STAFF_PASSWORD}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(workspaces_cli)
    app.cli.add_command(seed_demo)
