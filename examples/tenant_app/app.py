"""ExampleNotes: a pretend SaaS that sells its plans through Connect Polar's tenant API.

Sign in by name (the name is the customer's id at Polar: ``external_customer_id``), pick a plan
(a checkout at Polar), see your subscription, benefits and meters, record usage, open Polar's
customer portal, and watch the billing events the platform forwards. ExampleNotes holds an API key of
the platform only: never a Polar token.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from .catalog import Catalog, State, catalog_of, state_of
from .client import ApiError, ConnectPolar
from .config import Config, CredentialStore, check_api_key, check_webhook_secret, session_secret
from .events import BadEvent, BadSignature, EventStore, verify
from .problems import Problem, explain, no_key

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
WEBHOOK_PATH = "/webhooks/connect-polar"


def create_app(config: Config | None = None, *, transport: httpx.BaseTransport | None = None) -> Flask:
    """The app. ``transport``: an httpx transport for the calls to Connect Polar (tests)."""
    config = config or Config()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=session_secret(config),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="examplenotes_session",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    credentials = CredentialStore(config)
    events = EventStore(config.data_dir / "events.sqlite3")

    # -- helpers -----------------------------------------------------------------------------------

    def platform() -> ConnectPolar:
        """A client with the key in force now; :class:`ApiError` ``no_api_key`` without one."""
        key = credentials.current().api_key
        if not key:
            raise no_key()
        return ConnectPolar(config.api_url, key, transport=transport)

    def problem_of(error: ApiError) -> Problem:
        return explain(error, api_url=config.api_url)

    def flash_problem(found: Problem) -> None:
        flash(" ".join(part for part in (f"{found.title}.", found.message, found.hint) if part), "error")

    def user() -> str | None:
        name = session.get("user")
        return name if isinstance(name, str) else None

    def sign_in_first(next_path: str) -> BaseResponse:
        flash("Sign in first: your name is your customer id at Polar.", "info")
        return redirect(url_for("signin", next=next_path))

    def load_catalog(api: ConnectPolar) -> Catalog:
        return catalog_of(api.plans())

    def load_state(
        api: ConnectPolar, name: str, catalog: Catalog | None, *, from_polar: bool = False
    ) -> State | None:
        """The customer's state; None when Polar does not know them yet (nothing bought).
        ``from_polar``: just back from a checkout, read it from Polar itself."""
        try:
            return state_of(api.customer_state(name, from_polar=from_polar), catalog)
        except ApiError as exc:
            if exc.code == "unknown_customer":
                return None
            raise

    def load_last_usage(api: ConnectPolar) -> dict[str, Any] | None:
        """The usage event this browser recorded last, as the platform tells how it went."""
        external_id = session.get("last_usage")
        if not isinstance(external_id, str):
            return None
        try:
            return api.usage_event(external_id)
        except ApiError:
            return None  # the page shows the rest; a usage event is a detail

    @app.before_request
    def check_csrf() -> None:
        """Every form carries the session's token: another site cannot post them for you."""
        g.credentials = credentials.current()
        if request.method != "POST" or request.path == WEBHOOK_PATH:
            return
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf_token")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            abort(400, "This form has expired: go back, reload the page and try again.")

    def csrf_token() -> str:
        token = session.get("csrf_token")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            session["csrf_token"] = token
        return token

    @app.context_processor
    def common() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "user": user(), "credentials": g.get("credentials")}

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.errorhandler(400)
    def bad_request(error: Any) -> tuple[str, int]:
        return render_template("message.html", title="Bad request", message=error.description), 400

    @app.errorhandler(404)
    def not_found(_error: Any) -> tuple[str, int]:
        return render_template("message.html", title="Not found", message="There is no such page."), 404

    # -- signing in (by name: it is an example) ----------------------------------------------------

    @app.get("/")
    def home() -> BaseResponse | str:
        if user():
            return redirect(url_for("account"))
        return render_template("home.html")

    def safe_next(target: str | None, fallback: str) -> str:
        if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
            return target
        return fallback

    @app.route("/signin", methods=["GET", "POST"])
    def signin() -> BaseResponse | tuple[str, int]:
        next_path = safe_next(request.values.get("next"), url_for("account"))
        error = None
        name = ""
        if request.method == "POST":
            name = request.form.get("name", "").strip()
            if NAME_RE.fullmatch(name):
                session.clear()
                session["user"] = name
                flash(f"Welcome, {name}.", "success")
                return redirect(next_path)
            error = (
                "Type a name of 1 to 64 characters: letters, digits, spaces and . _ - @, starting "
                "with a letter or digit."
            )
        status = 422 if error else 200
        return render_template("signin.html", error=error, name=name, next_path=next_path), status

    @app.post("/signout")
    def signout() -> BaseResponse:
        session.clear()
        flash("Signed out.", "info")
        return redirect(url_for("home"))

    # -- plans and checkout ------------------------------------------------------------------------

    @app.get("/plans")
    def plans() -> tuple[str, int]:
        name = user()
        try:
            with platform() as api:
                catalog = load_catalog(api)
                current: set[str] = set()
                if name:
                    try:
                        state = load_state(api, name, catalog)
                        current = state.plan_ids if state else set()
                    except ApiError:
                        pass  # the plans still show; the account page says what failed
        except ApiError as exc:
            found = problem_of(exc)
            return render_template("plans.html", catalog=None, problem=found), found.status
        return render_template("plans.html", catalog=catalog, current=current, problem=None), 200

    @app.post("/checkout")
    def checkout() -> BaseResponse:
        name = user()
        if not name:
            return sign_in_first(url_for("plans"))
        plan = request.form.get("plan", "")
        # Polar puts the checkout's id in place of {CHECKOUT_ID} when it sends the customer back.
        success_url = url_for("account", _external=True) + "?checkout_id={CHECKOUT_ID}"
        try:
            with platform() as api:
                created = api.create_checkout(plan=plan, external_customer_id=name, success_url=success_url)
        except ApiError as exc:
            flash_problem(problem_of(exc))
            return redirect(url_for("plans"))
        return redirect(str(created["url"]), 303)

    # -- the account: state, portal, usage, last event ---------------------------------------------

    @app.get("/account")
    def account() -> BaseResponse | tuple[str, int]:
        name = user()
        if not name:
            return sign_in_first(url_for("account"))
        last_event = events.last_for(name)
        catalog: Catalog | None = None
        state: State | None = None
        problem: Problem | None = None
        last_usage: dict[str, Any] | None = None
        try:
            with platform() as api:
                catalog = load_catalog(api)
                state = load_state(api, name, catalog, from_polar="checkout_id" in request.args)
                last_usage = load_last_usage(api)
        except ApiError as exc:
            problem = problem_of(exc)
        page = render_template(
            "account.html",
            name=name,
            catalog=catalog,
            state=state,
            problem=problem,
            last_event=last_event,
            last_usage=last_usage,
            checkout_id=request.args.get("checkout_id"),
            usage_id=str(uuid.uuid4()),
        )
        return page, problem.status if problem else 200

    def account_action(action: Callable[[ConnectPolar, str], BaseResponse]) -> BaseResponse:
        name = user()
        if not name:
            return sign_in_first(url_for("account"))
        try:
            with platform() as api:
                return action(api, name)
        except ApiError as exc:
            flash_problem(problem_of(exc))
            return redirect(url_for("account"))

    @app.post("/account/portal")
    def portal() -> BaseResponse:
        def open_portal(api: ConnectPolar, name: str) -> BaseResponse:
            try:
                created = api.create_portal(external_customer_id=name)
            except ApiError as exc:
                if exc.code != "unknown_customer":
                    raise
                flash("Polar has no billing for you yet: choose a plan first.", "info")
                return redirect(url_for("plans"))
            return redirect(str(created["url"]), 303)

        return account_action(open_portal)

    @app.post("/account/usage")
    def usage() -> BaseResponse:
        event_name = request.form.get("event_name", "")
        # The form's own id: sent twice (a reload, a double click), the platform keeps it once.
        external_id = request.form.get("usage_id") or str(uuid.uuid4())

        def record(api: ConnectPolar, name: str) -> BaseResponse:
            metered = {m.event_name for m in load_catalog(api).metered}
            if event_name not in metered:
                flash("No plan meters that usage.", "error")
                return redirect(url_for("account"))
            answer = api.record_usage(
                [{"name": event_name, "external_customer_id": name, "external_id": external_id}]
            )
            session["last_usage"] = external_id
            if answer.get("duplicates"):
                flash(f"Already recorded: that {event_name} event was sent before, and counts once.", "info")
            else:
                flash(
                    f"Usage recorded: one {event_name} event. Your meter moves once Connect Polar has "
                    "sent it on to Polar (usually within seconds): reload to see it.",
                    "success",
                )
            return redirect(url_for("account"))

        return account_action(record)

    # -- the billing events the platform forwards --------------------------------------------------

    @app.post(WEBHOOK_PATH)
    def webhook() -> tuple[Response, int]:
        secret = credentials.current().webhook_secret
        if not secret:
            message = "CONNECT_POLAR_WEBHOOK_SECRET is not set: ExampleNotes cannot verify events yet."
            return jsonify(error=message), 503
        try:
            event = verify(secret, request.get_data(), dict(request.headers))
        except BadSignature:
            return jsonify(error="The signature does not match this app's signing secret."), 403
        except BadEvent as exc:
            return jsonify(error=f"Not an event: {exc}."), 400
        added = events.add(event)
        return jsonify(received=event.id, duplicate=not added), 200

    @app.get("/events")
    def event_list() -> str:
        return render_template(
            "events.html",
            events=events.latest(50),
            webhook_url=url_for("webhook", _external=True),
        )

    # -- set-up: the key and the secret, when the environment does not set them --------------------

    @app.route("/setup", methods=["GET", "POST"])
    def setup() -> BaseResponse | tuple[str, int]:
        errors: dict[str, str] = {}
        if request.method == "POST":
            current = credentials.current()
            api_key = request.form.get("api_key", "").strip()
            secret = request.form.get("webhook_secret", "").strip()
            if api_key and current.api_key_source != "environment":
                if problem := check_api_key(api_key):
                    errors["api_key"] = problem
            else:
                api_key = ""
            if secret and current.webhook_secret_source != "environment":
                if problem := check_webhook_secret(secret):
                    errors["webhook_secret"] = problem
            else:
                secret = ""
            if not errors:
                if api_key or secret:
                    credentials.save(api_key=api_key or None, webhook_secret=secret or None)
                    flash("Saved.", "success")
                return redirect(url_for("setup"))
        check: Problem | None = None
        mode = None
        plan_count = 0
        try:
            with platform() as api:
                answer = api.plans()
                mode, plan_count = str(answer.get("mode")), len(answer.get("plans") or [])
        except ApiError as exc:
            check = problem_of(exc)
        page = render_template(
            "setup.html",
            errors=errors,
            api_url=config.api_url,
            check=check,
            mode=mode,
            plan_count=plan_count,
            webhook_url=url_for("webhook", _external=True),
        )
        return page, 422 if errors else 200

    return app
