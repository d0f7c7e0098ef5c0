"""The support console's pages and actions, under ``/admin``, for staff only.

Every action is a POST with a CSRF token and a reason, and writes its audit row in the same
transaction as its effect: an action that fails leaves no row, and a row that cannot be written
undoes the action.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin import repository
from app.admin.access import staff_required
from app.admin.forms import (
    ActionForm,
    BulkForm,
    ConfirmedActionForm,
    RequeueForm,
    RetryEventsForm,
    RetryForm,
    RevokeKeyForm,
)
from app.audit import current_actor
from app.database import catalog, db_session, settings
from provisioning.api_keys import service as api_keys
from provisioning.audit import repository as audit_repository
from provisioning.audit.service import record
from provisioning.billing import service as billing_state
from provisioning.config import PolarEnvironment
from provisioning.connect import service as connect_service
from provisioning.db import utcnow
from provisioning.drift import service as drift
from provisioning.errors import ConnectPolarError
from provisioning.health.monitor import check_and_repair
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.reconcile.diff import plan_diff
from provisioning.runs import repository as runs
from provisioning.runs.models import RunBatch, RunStatus
from provisioning.runs.queue import enqueue_after_commit
from provisioning.runs.queue_health import queue_health, requeue_failed_job
from provisioning.runs.service import RunRefused, create_batch, retry_run, start_run
from provisioning.webhooks import repository as webhook_events
from provisioning.webhooks.urls import webhook_url

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 50
BULK_LIMIT = 5000  # connections one bulk action may touch
RECENT_RUNS = 20
RECENT_EVENTS = 50
RECENT_DRIFT = 50
STATUS_VALUES = {s.value for s in IntegrationStatus}


def _page() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 6:
        abort(400, description="The page number must be a whole number from 1.")
    return int(raw)


def _workspace_or_404(workspace_id: str) -> Any:
    try:
        uuid.UUID(workspace_id)
    except ValueError:
        abort(404, description="No workspace has this id.")
    workspace = repository.workspace(db_session(), workspace_id)
    if workspace is None:
        abort(404, description="No workspace has this id.")
    return workspace


def _filters(args: Mapping[str, str] | None = None) -> repository.WorkspaceFilter:
    """The list's filter, from the query string (or the bulk form's copy of it)."""
    args = request.args if args is None else args
    status = args.get("status") or None
    never = status == repository.NEVER_CONNECTED
    if status is not None and not never and status not in STATUS_VALUES:
        abort(400, description=f"Unknown status {status[:40]!r}.")
    environment = args.get("environment") or None
    if environment is not None and environment not in {e.value for e in PolarEnvironment}:
        abort(400, description=f"Unknown environment {environment[:40]!r}.")
    return repository.WorkspaceFilter(
        q=(args.get("q") or "").strip()[:200],
        status=IntegrationStatus(status) if status and not never else None,
        never_connected=never,
        environment=environment,
        behind_revision=catalog().revision if args.get("behind") == "1" else None,
        problem=args.get("problem") == "1",
    )


@bp.get("")
@staff_required
def index() -> Response:
    return redirect(url_for("admin.workspaces"))


def _cursor(raw: str | None) -> repository.Cursor | None:
    """``before=<ISO time>~<id>``: the last row of the page before this one."""
    if not raw:
        return None
    when, _, key = raw.partition("~")
    try:
        at = datetime.fromisoformat(when)
        uuid.UUID(key)
    except ValueError:
        abort(400, description="That list position is not valid: start again from the first page.")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at, key


def _cursor_text(cursor: repository.Cursor) -> str:
    at, key = cursor
    return f"{at.astimezone(UTC).replace(tzinfo=None).isoformat()}~{key}"  # UTC, no "+" to escape


COUNT_CAP = 1000


@bp.get("/workspaces")
@staff_required
def workspaces() -> str:
    where = _filters()
    before = _cursor(request.args.get("before"))
    db = db_session()
    counts = repository.status_counts(db)
    rows, after = repository.list_workspaces(db, where, limit=PAGE_SIZE, before=before)
    if not where.any:
        total = sum(counts.values())
    elif where.only_status and where.status is not None:
        total = counts.get(str(where.status), 0)
    else:
        total = repository.count_matching(db, where, cap=COUNT_CAP)
    return render_template(
        "admin/workspaces.html",
        rows=rows,
        total=total,
        capped=total > COUNT_CAP,
        before=before,
        after=_cursor_text(after) if after else None,
        where=where,
        counts=counts,
        statuses=list(IntegrationStatus),
        revision=catalog().revision,
        bulk_form=BulkForm(
            scope="selected",
            q=where.q,
            status=where.status or (repository.NEVER_CONNECTED if where.never_connected else ""),
            behind="1" if where.behind_revision else "",
            problem="1" if where.problem else "",
            environment=where.environment or "",
        ),
    )


@bp.get("/workspaces/<workspace_id>")
@staff_required
def workspace(workspace_id: str) -> str:
    ws = _workspace_or_404(workspace_id)
    db = db_session()
    connections = repository.connections(db, workspace_id)
    details: list[dict[str, Any]] = []
    for integration in connections:
        details.append(
            {
                "integration": integration,
                "runs": repository.recent_runs(db, integration.id, limit=RECENT_RUNS),
                "run_count": repository.count_runs(db, integration.id),
                "events": repository.recent_events(db, integration.id, limit=RECENT_EVENTS),
                "scopes": _scopes(integration),
                "served": settings().serves(integration.environment),
                "drift": drift.open_summary(db, integration.id, limit=RECENT_DRIFT),
                "event_counts": webhook_events.status_counts(db, integration.id),
                "failing": webhook_events.failing_count(db, integration.id),
                "billing": billing_state.summary(db, integration, latest=5),
            }
        )
    keys = api_keys.keys_of(db, workspace_id)
    people = {i.connected_by_user_id for i in connections if i.connected_by_user_id}
    people |= {k.created_by_user_id for k in keys if k.created_by_user_id}
    for d in details:
        people |= {r.requested_by_user_id for r in d["runs"] if r.requested_by_user_id}
    trail, _ = audit_repository.find(db, audit_repository.AuditFilter(workspace_id=workspace_id), limit=50)
    checks = {
        e.target_ids.get("integration_id"): e for e in reversed(trail) if e.action == "staff.check_connection"
    }
    return render_template(
        "admin/workspace.html",
        workspace=ws,
        members=repository.members(db, workspace_id),
        details=details,
        emails=repository.users_by_id(db, people),
        trail=trail,
        checks=checks,
        live=any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for d in details for r in d["runs"][:1]),
        revision=catalog().revision,
        drift_policy=settings().polar_drift_policy,
        action_form=ActionForm(),
        confirm_form=ConfirmedActionForm(),
        retry_form=RetryForm(),
        retry_events_form=RetryEventsForm(),
        api_keys=keys,
        revoke_key_form=RevokeKeyForm(),
        now=utcnow(),
        dumps=lambda payload: json.dumps(payload, indent=2, sort_keys=True, default=str),
        hook_url=lambda integration: webhook_url(settings(), integration),
    )


def _scopes(integration: PolarIntegration) -> dict[str, list[str]]:
    granted = set((integration.scopes or "").split())
    needed = catalog().required_scopes()
    return {"granted": sorted(granted), "missing": [s for s in needed if s not in granted]}


@bp.get("/workspaces/<workspace_id>/diff")
@staff_required
def diff(workspace_id: str) -> str:
    ws = _workspace_or_404(workspace_id)
    environment = request.args.get("environment") or None
    db = db_session()
    try:
        lines = plan_diff(db, settings(), workspace_id, environment=environment, catalog=catalog())
        error = None
    except ConnectPolarError as exc:
        lines, error = [], str(exc)
    finally:
        db.rollback()  # a dry run: nothing to keep (a token refresh commits on its own)
    return render_template("admin/diff.html", workspace=ws, lines=lines, error=error, environment=environment)


def _connection(workspace_id: str, environment: str | None) -> PolarIntegration:
    for integration in repository.connections(db_session(), workspace_id):
        if environment in (None, "", integration.environment):
            return integration
    abort(404, description="This workspace has no Polar connection in that environment.")


def _back(workspace_id: str) -> Response:
    return redirect(url_for("admin.workspace", workspace_id=workspace_id), 303)


def _flash_errors(form: ActionForm) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(str(error), "error")


def _invalid(form: ActionForm, workspace_id: str) -> Response:
    _flash_errors(form)
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/reprovision")
@staff_required
def reprovision(workspace_id: str) -> Response:
    _workspace_or_404(workspace_id)
    form = ActionForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    integration = _connection(workspace_id, form.environment.data)
    db = db_session()
    try:
        started = start_run(db, integration, trigger="admin", user_id=current_user.id)
    except RunRefused as exc:
        db.rollback()
        flash(f"Not re-provisioned: {exc}.", "error")
        return _back(workspace_id)
    if not started.created:
        db.rollback()
        flash(f"A run is already under way ({started.run.status}): wait for it to finish.", "error")
        return _back(workspace_id)
    record(
        db,
        current_actor(),
        "staff.reprovision",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id, "run_id": started.run.id},
        reason=form.reason.data,
        details={"environment": integration.environment},
    )
    enqueue_after_commit(db, started.run.id, settings().redis_url)
    db.commit()
    flash("Re-provisioning: the run is queued.", "success")
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/retry")
@staff_required
def retry(workspace_id: str) -> Response:
    _workspace_or_404(workspace_id)
    form = RetryForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    db = db_session()
    run = runs.get(db, form.run_id.data or "")
    integration = repository.connections(db, workspace_id)
    if run is None or run.integration_id not in {i.id for i in integration}:
        abort(404, description="This workspace has no such run.")
    try:
        retried = retry_run(db, run.id)
    except RunRefused as exc:
        db.rollback()
        flash(f"Not retried: {exc}.", "error")
        return _back(workspace_id)
    record(
        db,
        current_actor(),
        "staff.retry_run",
        workspace_id=workspace_id,
        targets={"integration_id": retried.integration_id, "run_id": retried.id},
        reason=form.reason.data,
    )
    enqueue_after_commit(db, retried.id, settings().redis_url)
    db.commit()
    flash("The failed run is queued again.", "success")
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/events/retry")
@staff_required
def retry_events(workspace_id: str) -> Response:
    """A connection's webhook events that failed processing, processed again (after a fix, say),
    audited with the reason."""
    _workspace_or_404(workspace_id)
    form = RetryEventsForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    db = db_session()
    integration = next(
        (i for i in repository.connections(db, workspace_id) if i.id == form.integration_id.data), None
    )
    if integration is None:
        abort(404, description="This workspace has no such connection.")
    count = billing_state.retry_failing(db, settings(), integration)
    if not count:
        flash("No event of this connection is failing: nothing to process again.", "info")
        return _back(workspace_id)
    record(
        db,
        current_actor(),
        "staff.retry_events",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id},
        reason=form.reason.data,
        details={"events": count},
    )
    db.commit()
    flash(f"{count} failed event{'s' if count != 1 else ''} queued to be processed again.", "success")
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/check")
@staff_required
def check(workspace_id: str) -> Response:
    _workspace_or_404(workspace_id)
    form = ActionForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    integration = _connection(workspace_id, form.environment.data)
    db = db_session()
    result = check_and_repair(db, settings(), integration, catalog(), repair=False).check
    record(
        db,
        current_actor(),
        "staff.check_connection",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id},
        reason=form.reason.data,
        details=result.as_dict(),
    )
    db.commit()
    if result.ok:
        flash(
            "The connection is healthy: the grant is active and the webhook endpoint is in place.", "success"
        )
    else:
        flash("The check found problems: " + "; ".join(result.problems), "error")
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/disconnect")
@staff_required
def disconnect(workspace_id: str) -> Response:
    _workspace_or_404(workspace_id)
    form = ConfirmedActionForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    integration = _connection(workspace_id, form.environment.data)
    db = db_session()
    environment = integration.environment
    if not connect_service.disconnect(
        db, settings(), workspace_id, environment=environment, user_id=current_user.id
    ):
        flash("Nothing to disconnect.", "info")
        return _back(workspace_id)
    record(
        db,
        current_actor(),
        "staff.disconnect",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id},
        reason=form.reason.data,
        details={"environment": environment},
    )
    db.commit()
    flash(f"Polar ({environment}) is disconnected from this workspace.", "success")
    return _back(workspace_id)


@bp.post("/workspaces/<workspace_id>/api-keys/revoke")
@staff_required
def revoke_api_key(workspace_id: str) -> Response:
    """A workspace's API key revoked by staff (a key leaked in a support ticket, say), audited with
    the reason; the owner sees it revoked on the billing page."""
    _workspace_or_404(workspace_id)
    form = RevokeKeyForm()
    if not form.validate():
        return _invalid(form, workspace_id)
    db = db_session()
    key = api_keys.key_in(db, workspace_id, form.key_id.data or "")
    if key is None:
        abort(404, description="No such API key in this workspace.")
    if not api_keys.revoke(db, key, user_id=current_user.id):
        flash(f"The API key {key.name} was already revoked.", "info")
        return _back(workspace_id)
    record(
        db,
        current_actor(),
        "staff.revoke_api_key",
        workspace_id=workspace_id,
        targets={"api_key_id": key.id},
        reason=form.reason.data,
        details=api_keys.audit_details(key),
    )
    db.commit()
    flash(f"The API key {key.name} ({key.display_prefix}…) is revoked: calls with it are refused.", "success")
    return _back(workspace_id)


@bp.post("/bulk/reprovision")
@staff_required
def bulk_reprovision() -> Response:
    form = BulkForm()
    filter_args: dict[str, Any] = _filter_args(form)
    back = redirect(url_for("admin.workspaces", **filter_args), 303)
    if not form.validate():
        _flash_errors(form)
        return back
    db = db_session()
    if form.scope.data == "matching":
        where = _filters({k: v for k, v in _filter_args(form).items() if v})
        ids = repository.matching_integration_ids(db, where, limit=BULK_LIMIT)
        selection = f"all {len(ids)} matching " + (_describe(where) or "the whole list")
    else:
        ids = list(dict.fromkeys(request.form.getlist("integration_id")))[:BULK_LIMIT]
        selection = f"{len(ids)} selected"
    integrations = [i for i in (db.get(PolarIntegration, x) for x in ids) if i is not None]
    if not integrations:
        flash("No connection selected: nothing was re-provisioned.", "error")
        return back
    batch = create_batch(db, user_id=current_user.id, reason=form.reason.data or "", selection=selection)
    started, skipped = [], []
    for integration in integrations:
        try:
            outcome = start_run(db, integration, trigger="admin", user_id=current_user.id, batch_id=batch.id)
        except RunRefused:
            skipped.append(integration.id)
            continue
        if outcome.created:
            started.append(outcome.run.id)
            enqueue_after_commit(db, outcome.run.id, settings().redis_url)
        else:
            skipped.append(integration.id)
    batch.total = len(started)
    record(
        db,
        current_actor(),
        "staff.bulk_reprovision",
        targets={"batch_id": batch.id, "runs": len(started)},
        reason=form.reason.data,
        details={"selection": selection, "skipped": len(skipped)},
    )
    db.commit()
    flash(
        f"{len(started)} run(s) queued"
        + (f"; {len(skipped)} skipped (not connected or a run already under way)" if skipped else ""),
        "success",
    )
    return redirect(url_for("admin.batch", batch_id=batch.id), 303)


def _filter_args(form: BulkForm) -> dict[str, str]:
    args = {
        "q": form.q.data,
        "status": form.status.data,
        "environment": form.environment.data,
        "behind": form.behind.data,
        "problem": form.problem.data,
    }
    return {k: v for k, v in args.items() if v}


def _describe(where: repository.WorkspaceFilter) -> str:
    parts = []
    if where.q:
        parts.append(f"search {where.q!r}")
    if where.status:
        parts.append(f"status {where.status}")
    if where.environment:
        parts.append(f"environment {where.environment}")
    if where.behind_revision:
        parts.append("behind the running catalog")
    if where.problem:
        parts.append("with problems")
    return ", ".join(parts)


@bp.get("/batches/<batch_id>")
@staff_required
def batch(batch_id: str) -> str:
    found = db_session().get(RunBatch, batch_id)
    if found is None:
        abort(404, description="No such batch.")
    progress = runs.batch_progress(db_session(), batch_id)
    done = progress.get(RunStatus.SUCCEEDED, 0)
    failed = progress.get(RunStatus.FAILED, 0) + progress.get(RunStatus.CANCELLED, 0)
    return render_template(
        "admin/batch.html",
        batch=found,
        progress=progress,
        done=done,
        failed=failed,
        live=done + failed < found.total,
    )


@bp.get("/queue")
@staff_required
def queue() -> str:
    oldest = repository.oldest_queued_run(db_session())
    age = (datetime.now(UTC) - oldest) if oldest else None
    return render_template(
        "admin/queue.html", health=queue_health(settings().redis_url), oldest_age=age, form=RequeueForm()
    )


@bp.post("/queue/requeue")
@staff_required
def requeue() -> Response:
    form = RequeueForm()
    if not form.validate():
        _flash_errors(form)
        return redirect(url_for("admin.queue"), 303)
    db = db_session()
    job_id = form.job_id.data or ""
    record(db, current_actor(), "staff.requeue_job", targets={"job_id": job_id}, reason=form.reason.data)
    db.flush()
    if not requeue_failed_job(settings().redis_url, job_id):
        db.rollback()
        flash("That job is not in the failed registry (any more): nothing was requeued.", "error")
        return redirect(url_for("admin.queue"), 303)
    db.commit()
    flash("The job is back on the queue.", "success")
    return redirect(url_for("admin.queue"), 303)


@bp.get("/audit")
@staff_required
def audit() -> str:
    args = request.args
    page = _page()
    where = audit_repository.AuditFilter(
        actor=(args.get("actor") or "").strip()[:320] or None,
        action=(args.get("action") or "").strip()[:64] or None,
        workspace_id=(args.get("workspace") or "").strip()[:36] or None,
        since=_day(args.get("since")),
        until=_day(args.get("until"), end=True),
    )
    db = db_session()
    events, total = audit_repository.find(db, where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render_template(
        "admin/audit.html",
        events=events,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        actions=audit_repository.actions(db),
        args=args,
    )


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        abort(400, description="Dates are written YYYY-MM-DD.")
    return day + timedelta(days=1) if end else day


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
