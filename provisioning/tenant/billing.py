"""What a tenant's deployment asks of Polar at runtime, through the tenant API: a checkout for a
plan, a customer portal session, and a customer's state.

Each call is made to Polar now, with the connection's token, in the caller's rate-budget lane (the
interactive lane for a web request), except a customer's state, answered from the platform's own
billing state once it knows the customer. Nothing here writes to the database (a token refresh
writes in its own transaction); nothing commits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from provisioning.billing import service as billing_state
from provisioning.billing.processing import parse_time
from provisioning.catalog import Catalog
from provisioning.catalog.desired import catalog_benefit_id
from provisioning.catalog.model import RUNTIME_SCOPES
from provisioning.config import Settings
from provisioning.db import iso_utc
from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.tokens import polar_api
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import ProvisioningError, TransientPolarError
from provisioning.polar.raw import get_json
from provisioning.tenant.service import provisioned_catalog

CHECKOUT_SCOPES = ("checkouts:write",)
PORTAL_SCOPES = ("customer_sessions:write",)
STATE_SCOPES = ("customers:read",)
assert set(CHECKOUT_SCOPES + PORTAL_SCOPES + STATE_SCOPES) <= set(RUNTIME_SCOPES)
CHECKOUT_FIELDS = frozenset({"plan", "external_customer_id", "customer_email", "success_url", "metadata"})
PORTAL_FIELDS = frozenset({"external_customer_id"})
MAX_EXTERNAL_ID = 256
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500


class InvalidRequest(ConnectPolarError):
    """The request's body is not one the endpoint accepts; ``field`` names what is wrong."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownPlan(InvalidRequest):
    code = "unknown_plan"


class UnknownCustomer(ConnectPolarError):
    """Polar has no customer with that external id in the connection's organization."""


class PermissionsUpgrade(ConnectPolarError):
    """The connection's grant lacks scopes the call needs: the owner reconnects Polar."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            "Reconnect Polar to grant " + ", ".join(missing) + ": the workspace's owner reconnects Polar "
            "on the billing page, and this call answers once Polar has granted them."
        )
        self.missing = missing


class PolarUnavailable(ConnectPolarError):
    """Polar failed (a 5xx, no answer) or answered in a way we cannot use."""


def missing_scopes(integration: PolarIntegration, needed: tuple[str, ...]) -> list[str]:
    """The scopes of ``needed`` the connection's grant lacks (none known: let Polar decide)."""
    if not integration.scopes:
        return []
    granted = set(integration.scopes.split())
    return [s for s in needed if s not in granted]


def _require(integration: PolarIntegration, needed: tuple[str, ...]) -> None:
    missing = missing_scopes(integration, needed)
    if missing:
        raise PermissionsUpgrade(missing)


def _api(session: Session, settings: Settings, integration: PolarIntegration) -> PolarApi:
    return polar_api(session, settings, integration, max_attempts=2, max_retry_after=2.0)


# -- validation ----------------------------------------------------------------------------------


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _fields(body: dict[str, Any], allowed: frozenset[str], required: tuple[str, ...]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidRequest(f"Unknown field: {extra[0]} (accepted: {', '.join(sorted(allowed))}).", extra[0])
    for name in required:
        if body.get(name) is None:
            raise InvalidRequest(f"{name} is required.", name)


def _string(body: dict[str, Any], name: str, *, max_length: int = MAX_EXTERNAL_ID) -> str:
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string.", name)
    if len(value) > max_length:
        raise InvalidRequest(f"{name} must be at most {max_length} characters.", name)
    return value


def _success_url(value: str, production: bool) -> str:
    parts = urlsplit(value)
    schemes = ("https",) if production else ("https", "http")
    if parts.scheme not in schemes or not parts.netloc or any(c.isspace() for c in value):
        wanted = "an https URL" if production else "an http or https URL"
        raise InvalidRequest(f"success_url must be {wanted}.", "success_url")
    return value


def _metadata(value: object) -> dict[str, str | int | float | bool]:
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be an object of string, number or boolean values.", "metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"metadata may have at most {MAX_METADATA_KEYS} keys.", "metadata")
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(f"metadata keys must be 1 to {MAX_METADATA_KEY} characters.", "metadata")
        number = isinstance(item, int | float) and not isinstance(item, bool)
        if number and isinstance(item, float) and not math.isfinite(item):
            number = False
        if not (isinstance(item, str | bool) or number):
            raise InvalidRequest(
                f"metadata.{key} must be a string, a number or a boolean.", f"metadata.{key}"
            )
        if isinstance(item, str) and len(item) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata.{key} must be at most {MAX_METADATA_VALUE} characters.", f"metadata.{key}"
            )
    return dict(value)


@dataclass(frozen=True)
class CheckoutRequest:
    plan: str
    external_customer_id: str
    success_url: str
    customer_email: str | None = None
    metadata: Mapping[str, str | int | float | bool] | None = None


def checkout_request(body: object, *, production: bool) -> CheckoutRequest:
    """The body of ``POST /checkouts``, checked; :class:`InvalidRequest` naming the field."""
    data = _object(body)
    _fields(data, CHECKOUT_FIELDS, ("plan", "external_customer_id", "success_url"))
    email = None
    if data.get("customer_email") is not None:
        email = _string(data, "customer_email", max_length=320)
        if "@" not in email or any(c.isspace() for c in email):
            raise InvalidRequest("customer_email must be an e-mail address.", "customer_email")
    metadata = _metadata(data["metadata"]) if data.get("metadata") is not None else None
    return CheckoutRequest(
        plan=_string(data, "plan", max_length=64),
        external_customer_id=_string(data, "external_customer_id"),
        success_url=_success_url(_string(data, "success_url", max_length=2048), production),
        customer_email=email,
        metadata=metadata,
    )


def portal_request(body: object) -> str:
    """The ``external_customer_id`` of a ``POST /customer-portal`` body, checked."""
    data = _object(body)
    _fields(data, PORTAL_FIELDS, ("external_customer_id",))
    return _string(data, "external_customer_id")


# -- calls ---------------------------------------------------------------------------------------


def _polar_failed(exc: ProvisioningError, needed: tuple[str, ...]) -> ConnectPolarError:
    """A Polar error the caller cannot fix, as what the API answers: Polar busy or failing
    (transient) as is, a grant lacking the scope as :class:`PermissionsUpgrade`, a token Polar
    rejects (reconnect) as is, anything else as :class:`PolarUnavailable`."""
    if isinstance(exc, TransientPolarError):
        return exc
    if exc.needs_reconnect:
        return PermissionsUpgrade(list(needed)) if exc.status == 403 else exc
    return PolarUnavailable(str(exc))


def create_checkout(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    running: Catalog,
    request: CheckoutRequest,
) -> dict[str, Any]:
    """A Polar checkout for the plan's product: ``{id, url, expires_at}``."""
    catalog = provisioned_catalog(session, integration, running)
    products = {m.plan_id: m.polar_product_id for m in integrations.mappings(session, integration.id)}
    if request.plan not in {p.id for p in catalog.plans} or request.plan not in products:
        known = ", ".join(p.id for p in catalog.plans if p.id in products)
        raise UnknownPlan(f"There is no plan {request.plan!r} (plans: {known}).", "plan")
    _require(integration, CHECKOUT_SCOPES)
    api = _api(session, settings, integration)
    fields: dict[str, Any] = {
        "products": [products[request.plan]],
        "external_customer_id": request.external_customer_id,
        "success_url": request.success_url,
    }
    if request.customer_email is not None:
        fields["customer_email"] = request.customer_email
    if request.metadata:
        fields["metadata"] = dict(request.metadata)
    try:
        checkout = api.create(
            api.sdk.checkouts.create, action="create a checkout", scope="checkouts:write", **fields
        )
    except ProvisioningError as exc:
        if exc.status == 422:
            raise InvalidRequest(str(exc)) from None
        raise _polar_failed(exc, CHECKOUT_SCOPES) from None
    return {"id": checkout.id, "url": checkout.url, "expires_at": checkout.expires_at}


def create_portal_session(
    session: Session, settings: Settings, integration: PolarIntegration, external_customer_id: str
) -> dict[str, Any]:
    """A Polar customer session for the customer: ``{url, expires_at}``."""
    _require(integration, PORTAL_SCOPES)
    api = _api(session, settings, integration)
    try:
        created = api.create(
            api.sdk.customer_sessions.create,
            action="create a customer portal session",
            scope="customer_sessions:write",
            external_customer_id=external_customer_id,
        )
    except ProvisioningError as exc:
        # Polar answers an unknown external id with a 422 on external_customer_id.
        if exc.status in (404, 422):
            raise UnknownCustomer(f"Polar has no customer {external_customer_id!r}.") from None
        raise _polar_failed(exc, PORTAL_SCOPES) from None
    return {"url": created.customer_portal_url, "expires_at": created.expires_at}


def customer_state(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    external_id: str,
    *,
    from_polar: bool = False,
) -> dict[str, Any]:
    """The customer's active subscriptions with their plan, granted benefits and meters: from the
    platform's own state when it knows the customer (no call to Polar), else, or ``from_polar``, as
    Polar has it now (the local state trails Polar by its events' processing: a tenant's app just
    back from a checkout asks Polar)."""
    local = None if from_polar else billing_state.customer_state(session, integration, external_id)
    if local is not None:
        return local
    _require(integration, STATE_SCOPES)
    api = _api(session, settings, integration)
    try:
        # As JSON: polar-sdk 1.0.2's CustomerState cannot load an active subscription's status.
        state = get_json(
            api,
            "/v1/customers/external/{external_id}/state",
            external_id=external_id,
            action="read a customer's state",
            scope="customers:read",
        )
    except ProvisioningError as exc:
        if exc.status == 404:
            raise UnknownCustomer(f"Polar has no customer {external_id!r}.") from None
        raise _polar_failed(exc, STATE_SCOPES) from None
    except ValueError:
        raise PolarUnavailable(
            "Polar answered a customer's state with something other than an object"
        ) from None
    plans = {m.polar_product_id: m.plan_id for m in integrations.mappings(session, integration.id)}
    meter_ids = {m.polar_meter_id: m.meter_id for m in integrations.meter_mappings(session, integration.id)}
    try:
        return {
            "external_id": state.get("external_id") or external_id,
            "source": "polar",
            "active_subscriptions": [
                {
                    "id": s["id"],
                    "plan": plans.get(s.get("product_id")),
                    "status": s["status"],
                    "current_period_end": iso_utc(parse_time(s.get("current_period_end"))),
                    "cancel_at_period_end": bool(s.get("cancel_at_period_end")),
                }
                for s in state.get("active_subscriptions") or []
            ],
            "granted_benefits": [
                {
                    "id": g["id"],
                    "benefit_id": g["benefit_id"],
                    "benefit": catalog_benefit_id(g.get("benefit_metadata")),
                }
                for g in state.get("granted_benefits") or []
            ],
            "meters": [billing_state.meter_view(m, meter_ids) for m in state.get("active_meters") or []],
        }
    except (KeyError, TypeError, AttributeError):
        raise PolarUnavailable("Polar answered a customer's state in a shape we cannot read") from None
