"""Event forwarding on the billing page: the owners set the endpoint in their app that receives the
connection's billing events (its signing secret shown once, on the answer page itself), rotate the
secret, disable, enable or remove the endpoint, and read the delivery log, redelivering from it.
Members see the endpoint and the log; only owners act, each action a POST with a CSRF token,
audited.

Like a new API key, a signing secret never goes into the session or a flash message: it is in the
body of the one response that makes it, sent with ``no-store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, abort, flash, g, make_response, redirect, render_template, request
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.audit import current_actor
from app.database import db_session, settings
from app.polar.access import member_access, owner_access
from app.polar.views import page_url, render_page
from provisioning.audit.service import record
from provisioning.config import PolarEnvironment
from provisioning.db import utcnow
from provisioning.forwarding import service as forwarding
from provisioning.forwarding.models import DeliveryStatus, EventForwardDelivery, EventForwardEndpoint
from provisioning.forwarding.service import ForwardingRefused
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import get_integration

bp = Blueprint("forwarding", __name__, url_prefix="/workspaces/<workspace_id>/polar/forwarding")
SECTION = "#event-forwarding"
RECENT_ON_PAGE = 5
LOG_LENGTH = 100
# ``g`` key of a refused endpoint form, shown again (with its error) by the billing page.
REFUSED_FORM = "forwarding_refused_form"


class EndpointForm(FlaskForm):
    """The endpoint's URL; ``environment`` is the connection (test or live mode) it is for."""

    environment = HiddenField(validators=[Optional()])
    url = StringField(
        "Endpoint URL",
        validators=[
            DataRequired(message="Give the URL of your app's endpoint."),
            Length(
                max=forwarding.URL_MAX,
                message=f"The URL is too long: at most {forwarding.URL_MAX} characters.",
            ),
        ],
    )


class ActionForm(FlaskForm):
    """Enable, disable, remove, redeliver: the CSRF token and the connection."""

    environment = HiddenField(validators=[Optional()])


class RotateForm(ActionForm):
    """Rotate the secret: ``version`` is the secret the form was made for, so a form sent twice (a
    reload of the answer page) rotates once."""

    version = HiddenField(validators=[Optional(), Length(max=64)])


def _environment(value: str | None) -> PolarEnvironment:
    """The connection a request names (default: the deployment's); 404 for anything else."""
    if not value:
        return settings().default_polar.environment
    try:
        return PolarEnvironment(value)
    except ValueError:
        abort(404)


def _back(workspace_id: str, environment: PolarEnvironment) -> str:
    return page_url(workspace_id, environment) + SECTION


def _log_url(workspace_id: str, environment: PolarEnvironment) -> str:
    return page_url(workspace_id, environment, "forwarding.deliveries")


def _usable(integration: PolarIntegration | None) -> bool:
    return integration is not None and integration.status != IntegrationStatus.NOT_CONNECTED


def _connection(workspace_id: str, environment: PolarEnvironment) -> PolarIntegration:
    """The workspace's connection in ``environment``; 404 when it has none."""
    integration = get_integration(db_session(), workspace_id, environment)
    if integration is None:
        abort(404)
    return integration


def _endpoint(workspace_id: str, environment: PolarEnvironment) -> EventForwardEndpoint:
    """The connection's endpoint, or back to the billing page saying there is none."""
    endpoint = forwarding.endpoint_of(db_session(), _connection(workspace_id, environment).id)
    if endpoint is None:
        flash(f"No event forwarding endpoint is set in {environment.mode}.", "info")
        abort(redirect(_back(workspace_id, environment), 303))
    return endpoint


def _audit(
    action: str,
    workspace_id: str,
    environment: PolarEnvironment,
    endpoint: EventForwardEndpoint,
    **details: Any,
) -> None:
    record(
        db_session(),
        current_actor(),
        action,
        workspace_id=workspace_id,
        targets={"endpoint_id": endpoint.id, "integration_id": endpoint.integration_id},
        details={"mode": environment.mode, "url": forwarding.url_for_audit(endpoint.url), **details},
    )


def _secret_page(
    workspace_id: str,
    environment: PolarEnvironment,
    endpoint: EventForwardEndpoint,
    secret: str,
    *,
    rotated: bool,
    previous_expires_at: datetime | None = None,
) -> Response:
    """The one page that shows a signing secret: never stored by the browser or a proxy."""
    response = make_response(
        render_template(
            "polar/forwarding_secret.html",
            workspace=member_access(workspace_id).workspace,
            environment=environment,
            endpoint=endpoint,
            secret=secret,
            rotated=rotated,
            previous_expires_at=previous_expires_at,
            page_url=_back(workspace_id, environment),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("")
@login_required
def save(workspace_id: str) -> Response:
    """Set the endpoint URL: the first time, its signing secret is made and shown once."""
    owner_access(workspace_id)
    form = EndpointForm()
    environment = _environment(form.environment.data)
    integration = _connection(workspace_id, environment)
    if not _usable(integration):
        flash(f"Connect Polar in {environment.mode} first: events come from the connection.", "error")
        return redirect(_back(workspace_id, environment), 303)
    if not form.validate():
        g.setdefault(REFUSED_FORM, form)
        return render_page(workspace_id, environment, status=400)
    db = db_session()
    try:
        saved = forwarding.save_endpoint(db, settings(), integration, form.url.data or "")
        db.flush()
    except ForwardingRefused as exc:
        db.rollback()
        form.url.errors = [str(exc)]
        g.setdefault(REFUSED_FORM, form)
        return render_page(workspace_id, environment, status=400)
    except IntegrityError:  # the same form, sent twice at once: the other request made the endpoint
        db.rollback()
        flash(
            "This form was already sent: the signing secret is shown only once, on the first answer.", "info"
        )
        return redirect(_back(workspace_id, environment), 303)
    endpoint = saved.endpoint
    if saved.created:
        _audit("event_forwarding.create", workspace_id, environment, endpoint)
        db.commit()
        assert saved.secret is not None
        return _secret_page(workspace_id, environment, endpoint, saved.secret, rotated=False)
    if saved.changed:
        previous = forwarding.url_for_audit(saved.previous_url or "")
        _audit("event_forwarding.update", workspace_id, environment, endpoint, previous_url=previous)
        db.commit()
        flash("The endpoint URL is saved; its signing secret is unchanged.", "success")
    else:
        flash(
            "The endpoint URL is unchanged; its signing secret is shown only once, when it is made.", "info"
        )
    return redirect(_back(workspace_id, environment), 303)


@bp.route("/rotate", methods=["GET", "POST"])
@login_required
def rotate(workspace_id: str) -> str | Response:
    """GET: what rotating does, and a button to confirm; POST: a new secret, shown once."""
    access = owner_access(workspace_id)
    environment = _environment(request.values.get("environment"))
    endpoint = _endpoint(workspace_id, environment)
    db = db_session()
    if request.method == "GET":
        return render_template(
            "polar/forwarding_rotate.html",
            workspace=access.workspace,
            environment=environment,
            endpoint=endpoint,
            overlap_hours=int(forwarding.OVERLAP.total_seconds() // 3600),
            previous_active=forwarding.previous_secret_active(endpoint, utcnow()),
            form=RotateForm(environment=environment.value, version=forwarding.secret_version(endpoint)),
            page_url=_back(workspace_id, environment),
        )
    form = RotateForm()
    if not form.validate():
        abort(400)
    if form.version.data != forwarding.secret_version(endpoint):
        flash(
            "The signing secret was already rotated from this form; the new one is shown only once.", "info"
        )
        return redirect(_back(workspace_id, environment), 303)
    rotated = forwarding.rotate_secret(db, settings(), endpoint)
    expires = rotated.previous_expires_at.isoformat() if rotated.previous_expires_at else None
    _audit(
        "event_forwarding.rotate_secret", workspace_id, environment, endpoint, previous_signs_until=expires
    )
    db.commit()
    return _secret_page(
        workspace_id,
        environment,
        endpoint,
        rotated.secret,
        rotated=True,
        previous_expires_at=rotated.previous_expires_at,
    )


def _toggle(workspace_id: str, enabled: bool) -> Response:
    owner_access(workspace_id)
    form = ActionForm()
    if not form.validate():
        abort(400)
    environment = _environment(form.environment.data)
    endpoint = _endpoint(workspace_id, environment)
    db = db_session()
    if forwarding.set_enabled(db, endpoint, enabled):
        _audit(
            "event_forwarding.enable" if enabled else "event_forwarding.disable",
            workspace_id,
            environment,
            endpoint,
        )
        db.commit()
        flash(
            "Event forwarding is enabled: events are sent to your endpoint again, queued ones first."
            if enabled
            else "Event forwarding is disabled: no event is queued for your endpoint until you enable it.",
            "success",
        )
    else:
        flash(f"Event forwarding was already {'enabled' if enabled else 'disabled'}.", "info")
    return redirect(_back(workspace_id, environment), 303)


@bp.post("/enable")
@login_required
def enable(workspace_id: str) -> Response:
    return _toggle(workspace_id, True)


@bp.post("/disable")
@login_required
def disable(workspace_id: str) -> Response:
    return _toggle(workspace_id, False)


@bp.route("/remove", methods=["GET", "POST"])
@login_required
def remove(workspace_id: str) -> str | Response:
    """GET: what removing does, and a button to confirm; POST: remove."""
    access = owner_access(workspace_id)
    environment = _environment(request.values.get("environment"))
    endpoint = _endpoint(workspace_id, environment)
    if request.method == "GET":
        return render_template(
            "polar/forwarding_remove.html",
            workspace=access.workspace,
            environment=environment,
            endpoint=endpoint,
            form=ActionForm(environment=environment.value),
            page_url=_back(workspace_id, environment),
        )
    if not ActionForm().validate():
        abort(400)
    db = db_session()
    _audit("event_forwarding.remove", workspace_id, environment, endpoint)
    failed = forwarding.remove_endpoint(db, endpoint)
    db.commit()
    flash(
        "The endpoint is removed with its signing secrets; no more events are sent to it"
        + (f" ({failed} not yet delivered are marked failed)." if failed else "."),
        "success",
    )
    return redirect(_back(workspace_id, environment), 303)


@bp.get("/deliveries")
@login_required
def deliveries(workspace_id: str) -> Response:
    """The connection's delivery log, newest first."""
    access = member_access(workspace_id)
    environment = _environment(request.args.get("environment"))
    integration = _connection(workspace_id, environment)
    db = db_session()
    response = make_response(
        render_template(
            "polar/forwarding_deliveries.html",
            access=access,
            workspace=access.workspace,
            environment=environment,
            endpoint=forwarding.endpoint_of(db, integration.id),
            deliveries=[_row(d) for d in forwarding.deliveries_of(db, integration.id, LOG_LENGTH)],
            form=ActionForm(environment=environment.value),
            page_url=_back(workspace_id, environment),
            limit=LOG_LENGTH,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/deliveries/<delivery_id>/redeliver")
@login_required
def redeliver(workspace_id: str, delivery_id: str) -> Response:
    owner_access(workspace_id)
    form = ActionForm()
    if not form.validate():
        abort(400)
    environment = _environment(form.environment.data)
    integration = _connection(workspace_id, environment)
    db = db_session()
    delivery = forwarding.delivery_in(db, integration.id, delivery_id)
    if delivery is None:
        abort(404)
    back = _log_url(workspace_id, environment)
    try:
        forwarding.redeliver(db, settings(), delivery)
    except ForwardingRefused as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(back, 303)
    record(
        db,
        current_actor(),
        "event_forwarding.redeliver",
        workspace_id=workspace_id,
        targets={"delivery_id": delivery.id, "integration_id": integration.id},
        details={"mode": environment.mode, "event_type": delivery.event_type},
    )
    db.commit()
    flash(f"The {delivery.event_type} event is queued again: it is sent in a moment.", "success")
    return redirect(back, 303)


# -- the billing page's section ------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    event_type: str
    status: str  # pending, retrying, delivered or failed
    label: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    when: str  # what the time column says
    redeliverable: bool


def _moment(at: datetime, created_at: datetime) -> str:
    """A time of the delivery's, with its date only when not the day it was created."""
    return f"{at:%H:%M:%S}" if at.date() == created_at.date() else f"{at:%Y-%m-%d %H:%M:%S}"


def _row(delivery: EventForwardDelivery) -> DeliveryRow:
    status = delivery.status
    when = ""
    if status is DeliveryStatus.DELIVERED:
        key, label = "delivered", "Delivered"
        if delivery.delivered_at:
            when = "at " + _moment(delivery.delivered_at, delivery.created_at)
    elif status is DeliveryStatus.FAILED:
        key, label = "failed", "Failed"
    elif delivery.attempts:
        key, label = "retrying", "Retrying"
        if delivery.next_attempt_at:
            when = "next try " + _moment(delivery.next_attempt_at, delivery.created_at)
    else:
        key, label = "pending", "Pending"
    return DeliveryRow(
        id=delivery.id,
        event_type=delivery.event_type,
        status=key,
        label=label,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        when=when,
        redeliverable=key != "pending",
    )


@dataclass(frozen=True)
class Section:
    """What the billing page shows of one connection's event forwarding."""

    environment: PolarEnvironment
    available: bool  # the workspace has this connection: an endpoint can be set
    endpoint: EventForwardEndpoint | None
    previous_signs_until: datetime | None
    recent: list[DeliveryRow]
    form: EndpointForm
    action_form: ActionForm
    log_url: str


def section(workspace_id: str, environment: str) -> Section:
    """The event forwarding section of the billing page's ``environment`` tab."""
    env = PolarEnvironment(environment)
    db = db_session()
    integration = get_integration(db, workspace_id, env)
    endpoint = forwarding.endpoint_of(db, integration.id) if integration is not None else None
    form = g.get(REFUSED_FORM) or EndpointForm(
        formdata=None, environment=env.value, url=endpoint.url if endpoint is not None else ""
    )
    now = utcnow()
    return Section(
        environment=env,
        available=_usable(integration),
        endpoint=endpoint,
        previous_signs_until=(
            endpoint.previous_secret_expires_at
            if endpoint is not None and forwarding.previous_secret_active(endpoint, now)
            else None
        ),
        recent=(
            [_row(d) for d in forwarding.deliveries_of(db, integration.id, RECENT_ON_PAGE)]
            if integration is not None
            else []
        ),
        form=form,
        action_form=ActionForm(environment=env.value),
        log_url=_log_url(workspace_id, env),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(section, "event_forwarding")
