"""Sign-in, sign-up, sign-out and the home page listing the user's workspaces."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from app.accounts import service
from app.accounts.forms import LoginForm, LogoutForm, SignupForm, WorkspaceForm
from app.accounts.models import User
from app.accounts.throttle import Blocked, LoginThrottle
from app.audit import current_actor
from app.database import db_session, settings
from app.extensions import login_manager
from app.requests import request_id
from app.security import safe_next
from provisioning.audit.service import Actor, record

bp = Blueprint("accounts", __name__)


SESSION_KEY = "sid"
TOO_MANY = {
    Blocked.EMAIL: "Too many failed sign-ins for this email address: try again in 15 minutes.",
    Blocked.ADDRESS: "Too many failed attempts from your network: try again in 15 minutes.",
}
SIGNUP_REFUSED = (
    "We could not create an account with these details. If you already have an account, sign in "
    "instead, or use another email address."
)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return service.session_user(db_session(), session.get(SESSION_KEY), user_id)


def _start_session(user: User) -> None:
    """A fresh session on sign-in (no fixation), recorded server-side so sign-out can revoke it."""
    db = db_session()
    session_id = service.open_session(db, user)
    db.commit()
    # Keys other areas ask to keep across sign-in (SESSION_KEYS_KEPT_AT_SIGN_IN), such as a Polar
    # connect under way: they are bound to their user by other means.
    kept = {k: session[k] for k in current_app.config.get("SESSION_KEYS_KEPT_AT_SIGN_IN", ()) if k in session}
    session.clear()
    session.update(kept)
    session[SESSION_KEY] = session_id
    login_user(user)


@bp.route("/")
def home() -> str | Response:
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    workspaces = service.workspaces_of(db_session(), current_user)
    return render_template("accounts/home.html", workspaces=workspaces, workspace_form=WorkspaceForm())


@bp.post("/workspaces")
@login_required
def create_workspace() -> str | Response | tuple[str, int]:
    """A new workspace owned by the signed-in user; then its billing page, to connect Polar."""
    form = WorkspaceForm()
    if not form.validate_on_submit() or not (form.name.data or "").strip():
        if not form.errors:
            form.name.errors = ["Enter a name for the workspace."]
        workspaces = service.workspaces_of(db_session(), current_user)
        return render_template("accounts/home.html", workspaces=workspaces, workspace_form=form), 400
    db = db_session()
    workspace = service.create_workspace(db, form.name.data or "", current_user)
    record(
        db,
        current_actor(),
        "owner.create_workspace",
        workspace_id=workspace.id,
        details={"name": workspace.name},
    )
    db.commit()
    flash(f"Workspace {workspace.name} created. Connect Polar to set up its billing.", "success")
    return redirect(url_for("polar.page", workspace_id=workspace.id), 303)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every page: the brand mark, never a 404."""
    return send_from_directory(current_app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        throttle = LoginThrottle(settings().redis_url)
        blocked = throttle.blocked(email, request.remote_addr)
        if blocked is not None:
            flash(TOO_MANY[blocked], "error")
            return render_template("accounts/login.html", form=form), 429
        db = db_session()
        user = service.authenticate(db, email, form.password.data or "")
        if user is None:
            throttle.failed(email, request.remote_addr)
            db.rollback()
            record(db, current_actor(email=email), "auth.sign_in_failed")
            db.commit()
            flash("That email and password do not match an account.", "error")
            return render_template("accounts/login.html", form=form), 401
        throttle.succeeded(email)
        record(db, Actor(user.id, user.email, request_id(), request.remote_addr), "auth.sign_in")
        db.commit()  # with a rehashed password, if any
        _start_session(user)
        return redirect(safe_next(request.args.get("next"), url_for("accounts.home")), 303)
    return render_template("accounts/login.html", form=form)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str | Response | tuple[str, int]:
    form = SignupForm()
    if form.validate_on_submit():
        throttle = LoginThrottle(settings().redis_url)
        if throttle.blocked("", request.remote_addr) is Blocked.ADDRESS:
            flash(TOO_MANY[Blocked.ADDRESS], "error")
            return render_template("accounts/signup.html", form=form), 429
        db = db_session()
        try:
            user = service.create_user(db, form.email.data or "", form.password.data or "")
            workspace = service.create_workspace(db, form.workspace.data or "", user)
        except service.EmailTaken:
            # Never say that the account exists: the same words as any refusal of these details,
            # and the attempt counts against the client's address like a failed sign-in.
            db.rollback()
            throttle.failed(None, request.remote_addr)
            flash(SIGNUP_REFUSED, "error")
            return render_template("accounts/signup.html", form=form), 400
        except service.AccountError as exc:
            db.rollback()
            flash(str(exc).capitalize() + ".", "error")
            return render_template("accounts/signup.html", form=form), 400
        db.commit()
        _start_session(user)
        flash(f"Welcome! Your workspace {workspace.name} is ready to connect to Polar.", "success")
        return redirect(url_for("polar.page", workspace_id=workspace.id), 303)
    return render_template("accounts/signup.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    db = db_session()
    service.close_session(db, session.get(SESSION_KEY))
    record(db, current_actor(), "auth.sign_out")
    db.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("accounts.login"), 303)


def init_app(app: Flask) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"

    @app.context_processor
    def _logout_form() -> dict[str, object]:
        # formdata=None: only its CSRF token is rendered, and the request's body is never read
        # (an error page for a JSON body, or for a client that disconnected mid-body, must render).
        return {"logout_form": LogoutForm(formdata=None)}

    app.register_blueprint(bp)
