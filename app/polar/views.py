"""Connect Polar: the owner's page, its status JSON, the connect button, the OAuth callbacks (one
per Polar environment), the organization chooser and disconnect.

A workspace has one connection per Polar environment: test mode (sandbox) and live mode
(production). Every URL takes ``environment`` (query string or form field); without it, the
deployment's default environment (POLAR_SERVER) is meant.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.audit import current_actor
from app.database import catalog, db_session, settings
from app.polar.access import is_owner, member_access, owner_access
from app.polar.forms import (
    EXPIRY_CHOICES,
    ApiKeyForm,
    ConnectForm,
    DisconnectForm,
    OrganizationForm,
    SwitchForm,
)
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.audit.service import record
from provisioning.billing import service as billing_state
from provisioning.config import PolarEnvironment, Settings
from provisioning.connect import service as connect_service
from provisioning.connect.service import ConnectError, SessionMismatch, SupersededConnect, SwitchPending
from provisioning.db import utcnow
from provisioning.drift import service as drift
from provisioning.health.monitor import check_and_repair
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import get_integration
from provisioning.runs import repository as runs
from provisioning.runs.queue import enqueue_after_commit
from provisioning.status import environments_overview, status_snapshot
from provisioning.tenant import service as tenant
from provisioning.tenant.service import NotReady

bp = Blueprint("polar", __name__, url_prefix="/workspaces/<workspace_id>/polar")

# The Flask session key of this browser's pending connect attempts' nonces (newest last): binds each
# state to this browser. Several may be in flight (tabs); each is dropped when its callback returns.
NONCES_KEY = "polar_connect_nonces"
MAX_PENDING_CONNECTS = 5
# Reconnects waiting for the owner to confirm a switch of Polar account or organization.
SWITCH_NONCES_KEY = "polar_switch_nonces"
# Polar's callback, arrived while signed out: kept in the session until the owner signs in.
CALLBACK_KEY = "polar_callback_pending"
CALLBACK_PARAMETERS = ("code", "state", "error")
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
LOST_SESSION = (
    "You were signed out while Polar asked for your consent, and this browser no longer holds the "
    "connect you started, so it could not be finished. Connect again: it takes one click."
)


def _environment(value: str | None) -> PolarEnvironment:
    """The environment a request names (default: the deployment's); 404 for anything else."""
    if not value:
        return settings().default_polar.environment
    try:
        return PolarEnvironment(value)
    except ValueError:
        abort(404)


def _enqueue_pending_runs(integration: PolarIntegration) -> None:
    """Put the integration's not-yet-enqueued runs on the queue once the transaction commits."""
    db = db_session()
    for run_id in runs.not_enqueued(db, integration.id):
        enqueue_after_commit(db, run_id, settings().redis_url)


def page_url(workspace_id: str, environment: PolarEnvironment, endpoint: str = "polar.page") -> str:
    """A page of the workspace's connection to ``environment``, named only when not the default."""
    if environment == settings().default_polar.environment:
        return url_for(endpoint, workspace_id=workspace_id)
    return url_for(endpoint, workspace_id=workspace_id, environment=environment.value)


@bp.get("")
@login_required
def page(workspace_id: str) -> Response:
    return render_page(workspace_id, _environment(request.args.get("environment")))


def render_page(
    workspace_id: str,
    environment: PolarEnvironment,
    *,
    api_key_form: ApiKeyForm | None = None,
    status: int = 200,
) -> Response:
    """The billing page of one mode; ``api_key_form`` is a refused new-key form to show again."""
    access = member_access(workspace_id)
    db = db_session()
    modes = environments_overview(db, settings(), workspace_id, catalog=catalog())
    snapshot = next((m for m in modes if m["environment"] == environment), None)
    if snapshot is None:
        abort(404)
    key_modes = api_keys.available_modes(db, settings(), workspace_id)
    if api_key_form is None:
        here = KeyMode.of(environment)
        api_key_form = ApiKeyForm(
            formdata=None,
            environment=environment.value,
            mode=(here if here in key_modes else key_modes[0]).value if key_modes else None,
        )
    try:
        connection = tenant.ready_connection(db, settings(), workspace_id, environment)
        deploy = tenant.deploy_env(db, connection, catalog())
    except NotReady:
        deploy = None
    integration = get_integration(db, workspace_id, environment)
    response = make_response(
        render_template(
            "polar/page.html",
            access=access,
            workspace=access.workspace,
            snapshot=snapshot,
            environment=environment,
            modes=modes,
            both_modes=len(settings().polar_environments) > 1,
            connect_form=ConnectForm(environment=environment.value),
            disconnect_form=DisconnectForm(environment=environment.value),
            deploy=deploy,
            api_keys=api_keys.keys_of(db, workspace_id),
            key_modes=key_modes,
            api_key_form=api_key_form,
            expiry_choices=EXPIRY_CHOICES,
            now=utcnow(),
            drift=drift.open_summary(db, integration.id) if integration is not None else None,
            billing=billing_state.summary(db, integration) if integration is not None else None,
            plan_names={p.id: p.name for p in catalog().plans},
            drift_policy=settings().polar_drift_policy,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/status")
@login_required
def status(workspace_id: str) -> Response:
    member_access(workspace_id)
    environment = _environment(request.args.get("environment"))
    snapshot = status_snapshot(
        db_session(), workspace_id, environment=environment, catalog=catalog(), settings=settings()
    )
    response = jsonify(snapshot)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/connect")
@login_required
def connect(workspace_id: str) -> Response:
    owner_access(workspace_id)
    form = ConnectForm()
    if not form.validate():
        abort(400)
    environment = _environment(form.environment.data)
    db = db_session()
    try:
        start = connect_service.begin_connect(
            db, settings(), workspace_id=workspace_id, user_id=current_user.id, environment=environment
        )
    except ConnectError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(page_url(workspace_id, environment), 303)
    db.commit()
    session[NONCES_KEY] = [*_pending_nonces(), start.nonce][-MAX_PENDING_CONNECTS:]
    return redirect(start.authorize_url, 303)


def _pending_nonces() -> list[str]:
    value = session.get(NONCES_KEY)
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []


def _switch_nonces() -> list[str]:
    value = session.get(SWITCH_NONCES_KEY)
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []


def _forget_nonce(nonce: str) -> None:
    """Drop one attempt from the browser session (single use); the others stay pending."""
    pending = _pending_nonces()
    if nonce in pending:
        pending.remove(nonce)
        session[NONCES_KEY] = pending


def callback(environment: str) -> Response | tuple[str, int]:
    """Polar's redirect back, at the path of the environment's redirect URI. Signed out (the session
    expired during the consent), its answer waits in the browser session, never in another URL,
    and the connect finishes at /polar/resume once the owner has signed in."""
    args = {k: v for k in CALLBACK_PARAMETERS if (v := request.args.get(k))}
    if not current_user.is_authenticated:
        session[CALLBACK_KEY] = {"environment": environment, "args": args}
        flash("Sign in to finish connecting Polar.", "info")
        return redirect(url_for("accounts.login", next=url_for("polar_resume")), 303)
    return _finish_callback(environment, args)


@login_required
def resume() -> Response | tuple[str, int]:
    """The callback that arrived while signed out, finished now that the owner has signed in."""
    pending = session.pop(CALLBACK_KEY, None)
    if not isinstance(pending, dict) or not isinstance(pending.get("args"), dict):
        flash(
            "There is no Polar connect waiting to be finished. Start it from a workspace's billing page.",
            "info",
        )
        return redirect(url_for("accounts.home"), 303)
    environment = str(pending.get("environment") or "")
    if not settings().serves(environment):
        abort(404)
    args = {k: str(v) for k, v in pending["args"].items() if k in CALLBACK_PARAMETERS}
    return _finish_callback(environment, args, resumed=True)


def _finish_callback(
    environment: str, args: dict[str, str], *, resumed: bool = False
) -> Response | tuple[str, int]:
    state = args.get("state")
    # Only the attempt this state names leaves the browser session: a stale or foreign callback
    # never wipes the owner's other pending connects.
    target = connect_service.read_state(settings(), state)
    if target is not None:
        pending = _pending_nonces()
        _forget_nonce(target.nonce)
    else:
        pending = []
    billing_url = None
    restart = None
    if (
        target is not None
        and target.user_id == current_user.id
        and is_owner(target.workspace_id, current_user.id)
    ):
        billing_url = page_url(target.workspace_id, PolarEnvironment(target.environment))
        if settings().serves(target.environment):
            restart = {
                "url": url_for("polar.connect", workspace_id=target.workspace_id),
                "form": ConnectForm(environment=target.environment),
            }
    error = args.get("error")
    if error:
        # Anyone can craft this URL: show our own words for Polar's error codes, never the
        # query string's description.
        if error in DENIED_ERRORS:
            kept = None
            if billing_url is not None and target is not None:
                existing = get_integration(db_session(), target.workspace_id, target.environment)
                if existing is not None and existing.status != IntegrationStatus.NOT_CONNECTED:
                    kept = existing
            return render_template(
                "polar/callback_error.html",
                denied=True,
                kept=kept,
                known=billing_url is not None,
                billing_url=billing_url,
                restart=None,
                superseded=False,
                description="",
            ), 200
        return _callback_page(
            description=POLAR_ERRORS.get(error, UNKNOWN_ERROR), billing_url=billing_url, restart=restart
        ), 400
    code = args.get("code")
    if not code or not state:
        return _callback_page(
            description="Polar's answer was incomplete. Start again from your workspace's billing page.",
            billing_url=billing_url,
            restart=restart,
        ), 400
    db = db_session()
    try:
        integration = connect_service.complete_connect(
            db,
            settings(),
            state=state,
            code=code,
            user_id=current_user.id,
            browser_nonces=pending,
            environment=environment,
            catalog=catalog(),
            may_connect=lambda workspace_id: is_owner(workspace_id, current_user.id),
            hold_switches=True,
        )
        _enqueue_pending_runs(integration)
        record(
            db,
            current_actor(),
            "owner.connect",
            workspace_id=integration.workspace_id,
            targets={"integration_id": integration.id},
            details={"environment": integration.environment, "organization_id": integration.polar_org_id},
        )
        db.commit()
    except SwitchPending as held:
        # Nothing changed yet: the new grant waits on its attempt for the owner's confirmation.
        db.commit()
        session[SWITCH_NONCES_KEY] = [*_switch_nonces(), held.nonce][-MAX_PENDING_CONNECTS:]
        return redirect(page_url(held.workspace_id, held.environment, "polar.switch"), 303)
    except ConnectError as exc:
        # complete_connect has already rolled its own work back to a savepoint; committing keeps
        # only the consumed attempt, so the same state can never be replayed.
        db.commit()
        superseded = isinstance(exc, SupersededConnect)
        description = str(exc)
        if isinstance(exc, SessionMismatch) and resumed:
            description = LOST_SESSION
        return _callback_page(
            description=description,
            billing_url=billing_url,
            superseded=superseded,
            restart=None if superseded else restart,
        ), (200 if superseded else 400)
    chosen = PolarEnvironment(integration.environment)
    if integration.status == IntegrationStatus.AWAITING_ORGANIZATION:
        flash("Polar is connected. Choose the organization to set up.", "info")
        return redirect(page_url(integration.workspace_id, chosen, "polar.organization"), 303)
    flash("Polar is connected. Setting up your billing now.", "success")
    return redirect(page_url(integration.workspace_id, chosen), 303)


def _callback_page(
    *,
    description: str,
    billing_url: str | None,
    denied: bool = False,
    superseded: bool = False,
    restart: dict[str, Any] | None = None,
) -> str:
    return render_template(
        "polar/callback_error.html",
        denied=denied,
        superseded=superseded,
        description=description,
        billing_url=billing_url,
        restart=restart,
    )


@bp.route("/organization", methods=["GET", "POST"])
@login_required
def organization(workspace_id: str) -> str | Response:
    access = owner_access(workspace_id)
    environment = _environment(request.args.get("environment"))
    db = db_session()
    integration = get_integration(db, workspace_id, environment)
    if integration is None or integration.status != IntegrationStatus.AWAITING_ORGANIZATION:
        return redirect(page_url(workspace_id, environment), 303)
    organizations: list[dict[str, Any]] = list(integration.reachable_organizations or [])
    form = OrganizationForm()
    form.organization_id.choices = [(o["id"], o.get("name") or o["id"]) for o in organizations]
    if form.validate_on_submit():
        try:
            run = connect_service.choose_organization(
                db, integration, form.organization_id.data, current_user.id
            )
        except ConnectError as exc:
            db.rollback()
            flash(str(exc), "error")
            return redirect(page_url(workspace_id, environment, "polar.organization"), 303)
        enqueue_after_commit(db, run.id, settings().redis_url)
        record(
            db,
            current_actor(),
            "owner.choose_organization",
            workspace_id=workspace_id,
            targets={"integration_id": integration.id, "run_id": run.id},
            details={"environment": environment, "organization_id": integration.polar_org_id},
        )
        db.commit()
        flash("Organization chosen. Setting up your billing now.", "success")
        return redirect(page_url(workspace_id, environment), 303)
    return render_template(
        "polar/organization.html", workspace=access.workspace, form=form, organizations=organizations
    )


@bp.route("/switch", methods=["GET", "POST"])
@login_required
def switch(workspace_id: str) -> str | Response:
    """A reconnect that would switch Polar account or organization: GET says what would change,
    POST switches (``decision=switch``) or keeps the current connection (``decision=keep``)."""
    access = owner_access(workspace_id)
    db = db_session()
    form = SwitchForm()
    environment = _environment(request.args.get("environment") or form.environment.data)
    pending = connect_service.pending_switch(db, settings(), _switch_nonces(), workspace_id, environment)
    if pending is None:
        flash("No Polar switch is waiting for you here. Reconnect Polar to start again.", "info")
        return redirect(page_url(workspace_id, environment), 303)
    if request.method == "GET":
        return render_template(
            "polar/switch.html",
            workspace=access.workspace,
            pending=pending,
            mode=environment.mode,
            both_modes=len(settings().polar_environments) > 1,
            form=SwitchForm(environment=environment.value),
            page_url=page_url(workspace_id, environment),
        )
    if not form.validate():
        abort(400)
    nonce = pending["nonce"]
    session[SWITCH_NONCES_KEY] = [n for n in _switch_nonces() if n != nonce]
    if request.form.get("decision") != "switch":
        connect_service.cancel_switch(db, settings(), nonce=nonce, user_id=current_user.id)
        db.commit()
        flash("Nothing changed: the workspace stays connected as before.", "info")
        return redirect(page_url(workspace_id, environment), 303)
    try:
        integration = connect_service.confirm_switch(
            db,
            settings(),
            nonce=nonce,
            user_id=current_user.id,
            may_connect=lambda w: is_owner(w, current_user.id),
        )
    except ConnectError as exc:
        db.commit()
        flash(str(exc), "error")
        return redirect(page_url(workspace_id, environment), 303)
    _enqueue_pending_runs(integration)
    record(
        db,
        current_actor(),
        "owner.connect",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id},
        details={
            "environment": integration.environment,
            "organization_id": integration.polar_org_id,
            "switched_from": (pending["from"]["organization"] or {}).get("id"),
        },
    )
    db.commit()
    if integration.status == IntegrationStatus.AWAITING_ORGANIZATION:
        flash("Polar account switched. Choose the organization to set up.", "info")
        return redirect(page_url(workspace_id, environment, "polar.organization"), 303)
    flash("Polar account switched. Setting up your billing now.", "success")
    return redirect(page_url(workspace_id, environment), 303)


@bp.post("/check")
@login_required
def check(workspace_id: str) -> Response:
    """Check the connection now, as the health monitor would (and repair what it would)."""
    owner_access(workspace_id)
    form = ConnectForm()  # CSRF and the environment, nothing else
    if not form.validate():
        abort(400)
    environment = _environment(form.environment.data)
    db = db_session()
    integration = get_integration(db, workspace_id, environment)
    if integration is None or not integration.access_token or not settings().serves(environment):
        flash("Polar is not connected: there is nothing to check.", "info")
        return redirect(page_url(workspace_id, environment), 303)
    outcome = check_and_repair(db, settings(), integration, catalog())
    record(
        db,
        current_actor(),
        "owner.check_connection",
        workspace_id=workspace_id,
        targets={"integration_id": integration.id},
        details={"ok": outcome.check.ok, "actions": outcome.actions},
    )
    db.commit()
    if outcome.check.ok:
        flash("Checked: the connection and its webhook endpoint are in order.", "success")
    else:
        flash("Checked: " + "; ".join(outcome.check.problems + outcome.actions) + ".", "error")
    return redirect(page_url(workspace_id, environment), 303)


@bp.route("/disconnect", methods=["GET", "POST"])
@login_required
def disconnect(workspace_id: str) -> str | Response:
    """GET: what disconnecting does, and a button to confirm; POST: disconnect."""
    access = owner_access(workspace_id)
    db = db_session()
    if request.method == "GET":
        environment = _environment(request.args.get("environment"))
        integration = get_integration(db, workspace_id, environment)
        if integration is None or integration.status == IntegrationStatus.NOT_CONNECTED:
            flash("Polar is not connected.", "info")
            return redirect(page_url(workspace_id, environment), 303)
        return render_template(
            "polar/disconnect.html",
            workspace=access.workspace,
            integration=integration,
            mode=environment.mode,
            both_modes=len(settings().polar_environments) > 1,
            form=DisconnectForm(environment=environment.value),
            page_url=page_url(workspace_id, environment),
        )
    form = DisconnectForm()
    if not form.validate():
        abort(400)
    environment = _environment(form.environment.data)
    integration = get_integration(db, workspace_id, environment)
    if connect_service.disconnect(
        db, settings(), workspace_id, environment=environment, user_id=current_user.id
    ):
        record(
            db,
            current_actor(),
            "owner.disconnect",
            workspace_id=workspace_id,
            targets={"integration_id": integration.id if integration else None},
            details={"environment": environment},
        )
        db.commit()
        flash(
            "Polar is disconnected: access revoked and our webhook endpoint removed. "
            "The products stay in your Polar organization.",
            "success",
        )
    else:
        flash("Polar was not connected.", "info")
    return redirect(page_url(workspace_id, environment), 303)


def init_app(app: Flask, config: Settings) -> None:
    app.register_blueprint(bp)
    # A connect under way survives signing in: its callback may have arrived while signed out.
    kept = app.config.setdefault("SESSION_KEYS_KEPT_AT_SIGN_IN", [])
    kept.extend(k for k in (NONCES_KEY, CALLBACK_KEY) if k not in kept)
    app.add_url_rule("/polar/resume", endpoint="polar_resume", view_func=resume, methods=["GET"])
    view = callback
    for endpoints in config.polar_environments.values():
        name = endpoints.environment.value
        is_default = endpoints.environment == config.default_polar.environment
        app.add_url_rule(
            endpoints.callback_path,
            endpoint="polar_callback" if is_default else f"polar_callback_{name}",
            view_func=view,
            methods=["GET"],
            defaults={"environment": name},
        )
