"""The owners' API keys on the billing page: create one (shown once, on the answer page itself) and
revoke one (after confirming). Members see the list on the billing page; only owners act.

A new key never goes into the session or a flash message (both live in the signed but readable
cookie): it is in the body of the one response that creates it, sent with ``no-store``.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from app.audit import current_actor
from app.database import db_session, settings
from app.polar.access import owner_access
from app.polar.forms import ApiKeyForm, RevokeKeyForm
from app.polar.views import page_url, render_page
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.api_keys.service import AlreadyCreated, ApiKeyRefused
from provisioning.audit.service import record
from provisioning.config import PolarEnvironment

bp = Blueprint("api_keys", __name__, url_prefix="/workspaces/<workspace_id>/polar/api-keys")


def _tab(value: str | None) -> PolarEnvironment:
    """The billing page's tab a form came from (the default environment's when not named)."""
    try:
        return PolarEnvironment(value) if value else settings().default_polar.environment
    except ValueError:
        return settings().default_polar.environment


@bp.post("")
@login_required
def create(workspace_id: str) -> Response:
    access = owner_access(workspace_id)
    form = ApiKeyForm()
    tab = _tab(form.environment.data)
    if not form.validate():
        return render_page(workspace_id, tab, api_key_form=form, status=400)
    db = db_session()
    mode = KeyMode(form.mode.data or "")  # validated: one of the modes
    try:
        created = api_keys.create(
            db,
            settings(),
            workspace_id=workspace_id,
            name=form.name.data or "",
            mode=mode,
            expires_in_days=int(form.expires.data) if form.expires.data else None,
            user_id=current_user.id,
            nonce=form.nonce.data or None,
        )
        db.flush()
    except AlreadyCreated as exc:
        db.rollback()
        flash(str(exc), "info")
        return redirect(page_url(workspace_id, exc.key.environment) + "#api-keys", 303)
    except IntegrityError:  # the same form, sent twice at once: the other request made the key
        db.rollback()
        flash("This form was already sent: its key is shown only once, on the first answer.", "info")
        return redirect(page_url(workspace_id, tab) + "#api-keys", 303)
    except ApiKeyRefused as exc:
        db.rollback()
        getattr(form, exc.field, form.name).errors = [str(exc)]
        return render_page(workspace_id, tab, api_key_form=form, status=400)
    key = created.key
    record(
        db,
        current_actor(),
        "api_key.create",
        workspace_id=workspace_id,
        targets={"api_key_id": key.id},
        details=api_keys.audit_details(key, with_expiry=True),
    )
    db.commit()
    response = make_response(
        render_template(
            "polar/api_key_created.html",
            workspace=access.workspace,
            key=key,
            plaintext=created.plaintext,
            api_url=url_for("api.env", _external=True),
            page_url=page_url(workspace_id, key.environment) + "#api-keys",
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke(workspace_id: str, key_id: str) -> str | Response:
    """GET: what revoking does, and a button to confirm; POST: revoke."""
    access = owner_access(workspace_id)
    db = db_session()
    key = api_keys.key_in(db, workspace_id, key_id)
    if key is None:
        abort(404)
    back = page_url(workspace_id, key.environment) + "#api-keys"
    if request.method == "GET":
        if key.revoked_at is not None:
            flash(f"The API key {key.name} is already revoked.", "info")
            return redirect(back, 303)
        return render_template(
            "polar/api_key_revoke.html",
            workspace=access.workspace,
            key=key,
            form=RevokeKeyForm(),
            page_url=back,
        )
    if not RevokeKeyForm().validate():
        abort(400)
    if api_keys.revoke(db, key, user_id=current_user.id):
        record(
            db,
            current_actor(),
            "api_key.revoke",
            workspace_id=workspace_id,
            targets={"api_key_id": key.id},
            details=api_keys.audit_details(key),
        )
        db.commit()
        flash(f"The API key {key.name} is revoked: calls with it are refused from now on.", "success")
    else:
        flash(f"The API key {key.name} was already revoked.", "info")
    return redirect(back, 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
