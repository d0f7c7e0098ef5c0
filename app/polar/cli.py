"""``flask provision``, ``flask plans check``/``diff``/``rollout``, ``flask health check``,
``flask keys rotate``, ``flask api-keys create``/``revoke``/``list`` and ``flask webhooks replay``."""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.database import catalog, db_session, settings
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.api_keys.service import MAX_EXPIRY_DAYS, ApiKeyRefused
from provisioning.audit.service import Actor, record
from provisioning.billing.tasks import replay
from provisioning.catalog import CatalogError, load_catalog
from provisioning.db import get_database
from provisioning.errors import ConnectPolarError
from provisioning.health.monitor import check_and_repair, check_due
from provisioning.integrations.models import IntegrationStatus
from provisioning.integrations.repository import all_for_workspace
from provisioning.integrations.service import get_integration
from provisioning.key_rotation import rotate_encryption
from provisioning.reconcile.diff import plan_diff
from provisioning.runs import repository as runs
from provisioning.runs.models import RunStatus
from provisioning.runs.queue import enqueue_after_commit
from provisioning.runs.rollout import plan_rollout, start_rollout
from provisioning.runs.service import RunRefused, start_run
from provisioning.vault import VaultError

plans_cli = AppGroup("plans", help="The plan catalog.")
FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
ENVIRONMENT = click.option(
    "--environment",
    type=click.Choice(["sandbox", "production"]),
    default=None,
    help="The workspace's Polar connection to use (default: POLAR_SERVER's, or its only one).",
)


@click.command("provision")
@with_appcontext
@click.argument("workspace_id")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its outcome.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@ENVIRONMENT
def provision(workspace_id: str, wait: bool, timeout: float, environment: str | None) -> None:
    """Start a provisioning run for a connected workspace (trigger "cli")."""
    db = db_session()
    integration = get_integration(db, workspace_id, environment or settings().polar_server)
    if integration is None and environment is None:
        integration = get_integration(db, workspace_id)
    if integration is None or not integration.access_token:
        raise click.ClickException(f"workspace {workspace_id} has no Polar connection")
    if not settings().serves(integration.environment):
        raise click.ClickException(
            f"workspace {workspace_id}'s connection is to Polar's {integration.environment} environment, "
            "which this deployment does not serve"
        )
    if integration.status == IntegrationStatus.AWAITING_ORGANIZATION:
        raise click.ClickException(
            f"workspace {workspace_id} waits for its owner to choose a Polar organization"
        )
    try:
        # Atomic with every other trigger (the owner's page, a reconnect, the console): a run
        # already queued or running is returned instead of a second one.
        started = start_run(db, integration, trigger="cli")
    except RunRefused as exc:
        db.rollback()
        raise click.ClickException(f"workspace {workspace_id}: {exc}") from None
    run_id = started.run.id
    if not started.created:
        db.rollback()
        message = f"run {run_id} is already under way for workspace {workspace_id}"
        if not wait:
            raise click.ClickException(message)
        click.echo(f"{message}; following it", err=True)
        _wait_for(run_id, timeout)
        return
    enqueue_after_commit(db, run_id, settings().redis_url)
    db.commit()
    click.echo(f"run {run_id} queued")
    if wait:
        _wait_for(run_id, timeout)


def _wait_for(run_id: str, timeout: float) -> None:
    db = db_session()
    deadline = time.monotonic() + timeout
    while True:
        db.expire_all()
        run = runs.get(db, run_id)
        assert run is not None
        if run.status in FINISHED:
            break
        if time.monotonic() > deadline:
            raise click.ClickException(f"run {run_id} is still {run.status} after {timeout:.0f}s")
        db.rollback()  # end the read transaction so the next poll sees the worker's commits
        time.sleep(0.5)
    for step in run.steps:
        duration = f"{step.duration_ms} ms" if step.duration_ms is not None else "-"
        click.echo(f"  {step.name:<28} {step.status:<10} {duration}{'  ' + step.error if step.error else ''}")
    if run.status == RunStatus.FAILED:
        raise click.ClickException(f"run {run_id} failed: {run.error or 'see its steps'}")
    if run.status == RunStatus.CANCELLED:
        raise click.ClickException(f"run {run_id} was cancelled: {run.error or 'see its steps'}")
    click.echo(f"run {run_id} succeeded")


@plans_cli.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def plans_check(file: Path | None) -> None:
    """Validate a plan catalog (default: PLANS_FILE); exit 1 naming each error."""
    path = file or settings().plans_file
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    plans = getattr(catalog, "plans", [])
    click.echo(f"{path}: {len(plans)} plans, revision {catalog.revision}")


@plans_cli.command("diff")
@click.argument("workspace_id")
@ENVIRONMENT
def plans_diff(workspace_id: str, environment: str | None) -> None:
    """Print what provisioning would create, change or archive in the workspace's organization."""
    db = db_session()
    try:
        lines = plan_diff(db, settings(), workspace_id, environment=environment)
    except ConnectPolarError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.rollback()  # a dry run: nothing to keep
    click.echo("\n".join(lines) if lines else "up to date: provisioning would change nothing")


@plans_cli.command("rollout")
@click.option("--dry-run", is_flag=True, help="Say which connections would get a run; start none.")
@ENVIRONMENT
@click.option("--workspace", "workspaces", multiple=True, help="Only this workspace (repeatable).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the runs to their end.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to follow them with --wait.")
def plans_rollout(
    dry_run: bool, environment: str | None, workspaces: tuple[str, ...], wait: bool, timeout: float
) -> None:
    """Provision the running catalog in every ready connection that has another revision.

    Resumable: run it again after an interruption and it starts only what is missing."""
    db = db_session()
    revision = catalog().revision
    plan = plan_rollout(db, revision, environment=environment, workspace_ids=workspaces)
    if not plan.integration_ids:
        click.echo(f"every ready connection is at catalog revision {revision}: nothing to roll out")
        return
    if dry_run:
        click.echo(f"{len(plan.integration_ids)} connection(s) would be provisioned with revision {revision}")
        db.rollback()
        return
    outcome = start_rollout(db, plan, settings().redis_url)
    click.echo(
        f"rollout {outcome.batch.id}: {outcome.started} run(s) queued"
        + (f", {outcome.already_running} already under way" if outcome.already_running else "")
        + (f", {len(outcome.refused)} refused" if outcome.refused else "")
    )
    for integration_id, why in outcome.refused:
        click.echo(f"  refused {integration_id}: {why}")
    if wait and outcome.started:
        _follow_batch(outcome.batch.id, outcome.started, timeout)


def _follow_batch(batch_id: str, total: int, timeout: float) -> None:
    """A progress line (n of N, failed, ETA) until every run of the batch is over."""
    db = db_session()
    began = time.monotonic()
    while True:
        db.rollback()  # each poll sees the workers' commits
        progress = runs.batch_progress(db, batch_id)
        done = progress.get(RunStatus.SUCCEEDED, 0)
        failed = progress.get(RunStatus.FAILED, 0) + progress.get(RunStatus.CANCELLED, 0)
        elapsed = time.monotonic() - began
        over = done + failed
        eta = f", about {elapsed / over * (total - over):.0f}s left" if 0 < over < total else ""
        click.echo(f"\r  {over} of {total} done, {failed} failed{eta}    ", nl=False)
        if over >= total:
            click.echo("")
            break
        if elapsed > timeout:
            click.echo("")
            raise click.ClickException(
                f"rollout still under way after {timeout:.0f}s; run it again to resume"
            )
        time.sleep(1.0)
    if failed:
        raise click.ClickException(f"{failed} run(s) failed: see the support console's batch page")


health_cli = AppGroup("health", help="Connection health.")


@health_cli.command("check")
@click.argument("workspace_id", required=False)
@click.option("--all", "check_all", is_flag=True, help="Every connected workspace that is due, now.")
def health_check(workspace_id: str | None, check_all: bool) -> None:
    """Check a workspace's connections now (or, with --all, every connection), repairing what needs
    no owner; print what was found."""
    if bool(workspace_id) == check_all:
        raise click.UsageError("name a WORKSPACE_ID or pass --all")
    db = db_session()
    if check_all:
        count = check_due(get_database(), settings(), catalog(), every=timedelta(0))
        click.echo(f"checked {count} connection(s)")
        return
    assert workspace_id is not None
    found = [i for i in (get_integration(db, workspace_id, e) for e in ("sandbox", "production")) if i]
    if not found:
        raise click.ClickException(f"workspace {workspace_id} has no Polar connection")
    failed = False
    for integration in found:
        outcome = check_and_repair(db, settings(), integration, catalog())
        db.commit()
        state = "healthy" if outcome.check.ok else "; ".join(outcome.check.problems)
        click.echo(f"{integration.environment}: {state}")
        for action in outcome.actions:
            click.echo(f"  {action}")
        failed = failed or not outcome.check.ok
    if failed:
        raise click.ClickException("problems found (see above)")


keys_cli = AppGroup("keys", help="The encryption keys of stored secrets.")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret (tokens, webhook secrets, connect attempts' PKCE verifiers)
    with the first POLAR_TOKEN_ENCRYPTION_KEY, each bound to its row. Safe to run again: it resumes
    where an interrupted run stopped."""

    def progress(table: str, done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            click.echo(f"  {table}: {done}/{total} rows", err=True)

    try:
        report = rotate_encryption(get_database(), settings(), progress)
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None
    rows = ", ".join(f"{n} {table}" for table, n in report.rows.items())
    click.echo(
        f"{report.rewritten} secret(s) re-encrypted with the first key, {report.current} already "
        f"current ({rows} rows)"
    )
    for item in report.unreadable:
        click.echo(f"cannot read {item.slot}: {item.reason}", err=True)
    if not report.complete:
        raise click.ClickException(
            f"{len(report.unreadable)} secret(s) could not be read and were left as they were; keep the "
            "older keys until they are dealt with (a moved or unreadable token: its owner reconnects)"
        )
    click.echo("once every process runs with that key first, the older keys can be removed")


api_keys_cli = AppGroup("api-keys", help="Keys for the tenant API (/api/v1).")


def _cli_actor() -> Actor:
    return Actor(None, f"cli:{getpass.getuser()}")


@api_keys_cli.command("create")
@click.argument("workspace_id")
@click.option("--name", required=True, help="What the key is for (shown on the billing page).")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in KeyMode]),
    default=KeyMode.TEST.value,
    show_default=True,
    help="test reads the workspace's sandbox connection, live its production connection.",
)
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, MAX_EXPIRY_DAYS),
    default=None,
    help="Days until the key stops working (default: never).",
)
def api_keys_create(workspace_id: str, name: str, mode: str, expires_in_days: int | None) -> None:
    """Create an API key for a workspace and print it: its last line on stdout is the key, shown
    this once (audited)."""
    db = db_session()
    try:
        created = api_keys.create(
            db,
            settings(),
            workspace_id=workspace_id,
            name=name,
            mode=KeyMode(mode),
            expires_in_days=expires_in_days,
        )
    except ApiKeyRefused as exc:
        db.rollback()
        raise click.ClickException(str(exc)) from None
    key = created.key
    record(
        db,
        _cli_actor(),
        "api_key.create",
        workspace_id=workspace_id,
        targets={"api_key_id": key.id},
        details=api_keys.audit_details(key, with_expiry=True),
    )
    db.commit()
    expiry = f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "does not expire"
    click.echo(
        f"created API key {key.id} ({key.mode.label.lower()}, {key.display_prefix}…, {expiry}); "
        "it is shown this once:",
        err=True,
    )
    click.echo(created.plaintext)


@api_keys_cli.command("revoke")
@click.argument("key_id")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
def api_keys_revoke(key_id: str, reason: str) -> None:
    """Revoke an API key (by its id, or by what the billing page shows: cp_test_<lookup id>); calls
    with it are refused at once (audited)."""
    db = db_session()
    key = api_keys.find(db, key_id)
    if key is None:
        raise click.ClickException(f"no API key {key_id}")
    if not api_keys.revoke(db, key):
        db.rollback()
        click.echo(f"API key {key.id} ({key.display_prefix}…) was already revoked: nothing changed")
        return
    record(
        db,
        _cli_actor(),
        "api_key.revoke",
        workspace_id=key.workspace_id,
        targets={"api_key_id": key.id},
        reason=reason or None,
        details=api_keys.audit_details(key),
    )
    db.commit()
    click.echo(f"revoked API key {key.id} ({key.display_prefix}…, {key.name})")


@api_keys_cli.command("list")
@click.argument("workspace_id")
def api_keys_list(workspace_id: str) -> None:
    """A workspace's API keys (never the keys themselves), newest first."""
    db = db_session()
    for key in api_keys.keys_of(db, workspace_id):
        state = (
            f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
            if key.revoked_at
            else f"expires {key.expires_at:%Y-%m-%d}"
            if key.expires_at
            else "active"
        )
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(
            f"{key.id}  {key.display_prefix}…  {key.mode.value:<4}  last used {used:<16}  {state}  {key.name}"
        )


webhooks_cli = AppGroup("webhooks", help="Polar's webhook events as the platform recorded them.")


def _since(value: str | None) -> datetime | None:
    """``--since``: an ISO 8601 date or time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2026-12-01T09:00)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@webhooks_cli.command("replay")
@click.option("--workspace", "workspace_id", default=None, help="Only this workspace's connections.")
@click.option("--since", default=None, help="Only events received at or after this ISO 8601 time (UTC).")
@click.option("--event", "event_id", default=None, help="Only this event (its id here or its webhook-id).")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
def webhooks_replay(workspace_id: str | None, since: str | None, event_id: str | None, reason: str) -> None:
    """Process stored events again, oldest first, into the billing state (whatever their status:
    failed ones after a fix, or all of a workspace's to rebuild its state). Applying an event again
    never undoes what a newer one set."""
    received_since = _since(since)
    db = db_session()
    integration_ids: list[str] | None = None
    if workspace_id is not None:
        integration_ids = [i.id for i in all_for_workspace(db, workspace_id)]
        if not integration_ids:
            raise click.ClickException(f"workspace {workspace_id} has no Polar connection")
    if workspace_id is None and received_since is None and event_id is None:
        raise click.UsageError("say which events: --workspace, --since and/or --event")
    record(
        db,
        _cli_actor(),
        "webhooks.replay",
        workspace_id=workspace_id,
        reason=reason or None,
        details={"since": since, "event": event_id},
    )
    db.commit()
    outcome = replay(
        get_database(), settings(), integration_ids=integration_ids, since=received_since, event_id=event_id
    )
    if not outcome.selected:
        raise click.ClickException("no stored event matches")
    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.by_status.items()))
    click.echo(f"replayed {outcome.selected} event(s): {counts or 'none due'}")


def init_app(app: Flask) -> None:
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(api_keys_cli)
    app.cli.add_command(provision)
    app.cli.add_command(plans_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(health_cli)
