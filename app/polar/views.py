"""Connect Polar: the owner's page, its status JSON, the connect button, the OAuth callback,
the organization chooser and disconnect."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.database import catalog, db_session, settings
from app.polar.access import is_owner, member_access, owner_access
from app.polar.forms import ConnectForm, DisconnectForm, OrganizationForm
from provisioning.connect import service as connect_service
from provisioning.connect.service import ConnectError
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.queue import enqueue_after_commit
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.service import status_snapshot

bp = Blueprint("polar", __name__, url_prefix="/workspaces/<workspace_id>/polar")

# The Flask session key of the pending connect attempt's nonce: binds the state to this browser.
NONCE_KEY = "polar_connect_nonce"
DENIED_ERRORS = {"access_denied"}
# OAuth error codes Polar's authorize endpoint redirects with, in words an owner can act on.
POLAR_ERRORS = {
    "invalid_scope": "Polar refused the permissions billing setup asks for. Contact support.",
    "invalid_request": "Polar refused the authorization request. Start again from the billing page.",
    "unauthorized_client": "Polar does not allow this platform to connect right now. Contact support.",
    "unsupported_response_type": "Polar refused the authorization request. Contact support.",
    "server_error": "Polar had a problem. Try again in a few minutes.",
    "temporarily_unavailable": "Polar is temporarily unavailable. Try again in a few minutes.",
    "login_required": "Sign in to Polar, then start again from the billing page.",
    "consent_required": "Polar needs your consent. Start again from the billing page.",
}
UNKNOWN_ERROR = "Polar did not complete the authorization. Start again from the billing page."


def _integration(workspace_id: str) -> PolarIntegration | None:
    return db_session().scalar(select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id))


def _enqueue_pending_runs(integration: PolarIntegration) -> None:
    """Put the integration's not-yet-enqueued runs on the queue once the transaction commits."""
    db = db_session()
    runs = db.scalars(
        select(ProvisioningRun).where(
            ProvisioningRun.integration_id == integration.id,
            ProvisioningRun.status == RunStatus.QUEUED.value,
            ProvisioningRun.enqueued_at.is_(None),
        )
    )
    for run in runs:
        enqueue_after_commit(db, run.id, settings().redis_url)


@bp.get("")
@login_required
def page(workspace_id: str) -> str:
    access = member_access(workspace_id)
    snapshot = status_snapshot(db_session(), workspace_id, catalog=catalog())
    return render_template(
        "polar/page.html",
        access=access,
        workspace=access.workspace,
        snapshot=snapshot,
        connect_form=ConnectForm(),
        disconnect_form=DisconnectForm(),
    )


@bp.get("/status")
@login_required
def status(workspace_id: str) -> Response:
    member_access(workspace_id)
    response = jsonify(status_snapshot(db_session(), workspace_id, catalog=catalog()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/connect")
@login_required
def connect(workspace_id: str) -> Response:
    owner_access(workspace_id)
    db = db_session()
    try:
        start = connect_service.begin_connect(
            db, settings(), workspace_id=workspace_id, user_id=current_user.id
        )
    except ConnectError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("polar.page", workspace_id=workspace_id), 303)
    db.commit()
    session[NONCE_KEY] = start.nonce
    return redirect(start.authorize_url, 303)


@login_required
def callback() -> Response | tuple[str, int]:
    """Polar's redirect back, at the path of POLAR_OAUTH_REDIRECT_URI."""
    browser_nonce = session.pop(NONCE_KEY, None)
    error = request.args.get("error")
    if error:
        # Anyone can craft this URL: show our own words for Polar's error codes, never the
        # query string's description.
        if error in DENIED_ERRORS:
            return _callback_page(denied=True, error="access_denied", description=""), 200
        known = error if error in POLAR_ERRORS else "error"
        return _callback_page(error=known, description=POLAR_ERRORS.get(error, UNKNOWN_ERROR)), 400
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not state:
        return _callback_page(
            error="invalid_request", description="The callback carries no code or state."
        ), 400
    db = db_session()
    try:
        integration = connect_service.complete_connect(
            db,
            settings(),
            state=state,
            code=code,
            user_id=current_user.id,
            browser_nonce=browser_nonce,
            catalog=catalog(),
            may_connect=lambda workspace_id: is_owner(workspace_id, current_user.id),
        )
        _enqueue_pending_runs(integration)
        db.commit()
    except ConnectError as exc:
        # complete_connect has already rolled its own work back to a savepoint; committing keeps
        # only the consumed attempt, so the same state can never be replayed.
        db.commit()
        return _callback_page(error="connect_failed", description=str(exc)), 400
    if integration.status == IntegrationStatus.AWAITING_ORGANIZATION.value:
        flash("Polar is connected. Choose the organization to set up.", "info")
        return redirect(url_for("polar.organization", workspace_id=integration.workspace_id), 303)
    flash("Polar is connected. Setting up your billing now.", "success")
    return redirect(url_for("polar.page", workspace_id=integration.workspace_id), 303)


def _callback_page(*, error: str, description: str, denied: bool = False) -> str:
    return render_template("polar/callback_error.html", denied=denied, error=error, description=description)


@bp.route("/organization", methods=["GET", "POST"])
@login_required
def organization(workspace_id: str) -> str | Response:
    access = owner_access(workspace_id)
    integration = _integration(workspace_id)
    if integration is None or integration.status != IntegrationStatus.AWAITING_ORGANIZATION.value:
        return redirect(url_for("polar.page", workspace_id=workspace_id), 303)
    organizations: list[dict[str, Any]] = list(integration.reachable_organizations or [])
    form = OrganizationForm()
    form.organization_id.choices = [(o["id"], o.get("name") or o["id"]) for o in organizations]
    if form.validate_on_submit():
        db = db_session()
        try:
            run = connect_service.choose_organization(
                db, integration, form.organization_id.data, current_user.id
            )
        except ConnectError as exc:
            db.rollback()
            flash(str(exc), "error")
            return redirect(url_for("polar.organization", workspace_id=workspace_id), 303)
        enqueue_after_commit(db, run.id, settings().redis_url)
        db.commit()
        flash("Organization chosen. Setting up your billing now.", "success")
        return redirect(url_for("polar.page", workspace_id=workspace_id), 303)
    return render_template(
        "polar/organization.html", workspace=access.workspace, form=form, organizations=organizations
    )


@bp.post("/disconnect")
@login_required
def disconnect(workspace_id: str) -> Response:
    owner_access(workspace_id)
    db = db_session()
    if connect_service.disconnect(db, settings(), workspace_id, user_id=current_user.id):
        db.commit()
        flash("Polar is disconnected.", "success")
    else:
        flash("Polar was not connected.", "info")
    return redirect(url_for("polar.page", workspace_id=workspace_id), 303)


def init_app(app: Flask, callback_path: str) -> None:
    app.register_blueprint(bp)
    app.add_url_rule(callback_path, endpoint="polar_callback", view_func=callback, methods=["GET"])
