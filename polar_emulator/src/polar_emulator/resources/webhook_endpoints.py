"""Webhook endpoints: list, create, get, update, delete and reset secret (``/v1/webhooks/endpoints``).

Endpoints are kept API-shaped in ``store.collections["webhook_endpoints"]`` (the delivery module
reads ``enabled``, ``events``, ``format``, ``secret``, ``api_version`` and ``url`` from there).
Every call also needs the ``organization:manage`` permission (owner or admin).

Polar refuses plain-http, localhost and private-address URLs. The emulator does the same only
with ``strict_webhook_urls``; by default it accepts them so local runs and tests get deliveries.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import Query, Response
from pydantic import StringConstraints
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.store import collection, now
from polar_emulator.errors import ApiError, not_found, validation_item
from polar_emulator.middleware import DEFAULT_VERSION, SUPPORTED_VERSIONS
from polar_emulator.resources.common import Body, Resource
from polar_emulator.tokens import generate_token, new_id

SECRET_PREFIX = "whsec_"

EventType = Literal[
    "checkout.created", "checkout.updated", "checkout.expired",
    "customer.created", "customer.updated", "customer.deleted", "customer.state_changed",
    "customer_seat.assigned", "customer_seat.claimed", "customer_seat.revoked",
    "member.created", "member.updated", "member.deleted",
    "order.created", "order.updated", "order.paid", "order.refunded",
    "subscription.created", "subscription.updated", "subscription.active", "subscription.canceled",
    "subscription.uncanceled", "subscription.cycled", "subscription.revoked", "subscription.past_due",
    "subscription.paused", "subscription.resumed",
    "refund.created", "refund.updated",
    "product.created", "product.updated",
    "discount.created", "discount.updated", "discount.deleted",
    "benefit.created", "benefit.updated",
    "benefit_grant.created", "benefit_grant.cycled", "benefit_grant.updated", "benefit_grant.revoked",
    "organization.updated",
]  # fmt: skip
Format = Literal["raw", "discord", "slack"]
ApiVersion = Literal["2026-04", "2026-10"]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2083)]
PRIVATE_URL_MESSAGE = "Webhook URLs cannot point to localhost or private IP addresses."


class WebhookEndpointCreate(Body):
    url: Url
    name: str | None = None
    format: Format
    events: list[EventType]
    organization_id: UUID | None = None
    api_version: ApiVersion | None = None  # polar-sdk 1.0.2 input, newer than the spec


class WebhookEndpointUpdate(Body):
    url: Url | None = None
    name: str | None = None
    format: Format | None = None
    events: list[EventType] | None = None
    enabled: bool | None = None
    api_version: ApiVersion | None = None


def _url_error(type_: str, msg: str, url: str) -> ApiError:
    return ApiError(
        422,
        {"error": "RequestValidationError", "detail": [validation_item(["body", "url"], msg, type_, url)]},
    )


def _is_private_host(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def check_url(request: Request, url: str) -> None:
    """Polar's HttpsUrl + hostname rule, relaxed to any http(s) URL unless ``strict_webhook_urls``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _url_error("url_parsing", "Input should be a valid URL, relative URL without a base", url)
    if not get_store(request).config.strict_webhook_urls:
        return
    if parts.scheme != "https":
        raise _url_error("url_scheme", "URL scheme should be 'https'", url)
    if _is_private_host(parts.hostname):
        raise _url_error("value_error", f"Value error, {PRIVATE_URL_MESSAGE}", url)


def _request_version(request: Request) -> str:
    version = request.headers.get("polar-version")
    return version if version in SUPPORTED_VERSIONS else DEFAULT_VERSION


# Every call, reads included, needs organization:manage (owner or admin).
ENDPOINTS = Resource(
    "webhook_endpoints",
    prefix="/v1/webhooks/endpoints",
    tag="webhooks",
    scope="webhooks",
    manage=("organization:manage", "manage webhooks"),
    private=True,
)
router = ENDPOINTS.router


@router.get("")
async def list_webhook_endpoints(request: Request, organization_id: list[UUID] | None = Query(None)) -> dict:
    return ENDPOINTS.list_records(request, metadata=False)


@router.post("", status_code=201)
async def create_webhook_endpoint(request: Request, body: WebhookEndpointCreate) -> dict:
    _, organization_id = ENDPOINTS.new_owner(request, body.organization_id)
    check_url(request, body.url)
    store = get_store(request)
    endpoint: dict[str, Any] = {
        "created_at": now(store),
        "modified_at": None,
        "id": new_id(),
        "url": body.url,
        "name": body.name,
        "format": body.format,
        "secret": generate_token(SECRET_PREFIX),
        "organization_id": organization_id,
        "events": list(body.events),
        "enabled": True,
        "api_version": body.api_version or _request_version(request),
        "uses_standard_webhook_signature": False,
    }
    collection(store, "webhook_endpoints")[endpoint["id"]] = endpoint
    return endpoint


@router.get("/{id}")
async def get_webhook_endpoint(request: Request, id: UUID) -> dict:
    return ENDPOINTS.read_one(request, id)


@router.patch("/{id}")
async def update_webhook_endpoint(request: Request, id: UUID, body: WebhookEndpointUpdate) -> dict:
    _, endpoint = ENDPOINTS.for_write(request, id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        check_url(request, changes["url"])
    elif changes.get("enabled") and not endpoint["enabled"]:
        check_url(request, endpoint["url"])  # re-enabling revalidates the stored URL
    endpoint.update(changes)
    endpoint["modified_at"] = now(get_store(request))
    return endpoint


@router.delete("/{id}", status_code=204)
async def delete_webhook_endpoint(request: Request, id: UUID) -> Response:
    _, endpoint = ENDPOINTS.for_write(request, id)
    if collection(get_store(request), "webhook_endpoints").pop(endpoint["id"], None) is None:
        raise not_found()
    return Response(status_code=204)


@router.patch("/{id}/secret")
async def reset_webhook_endpoint_secret(request: Request, id: UUID) -> dict:
    _, endpoint = ENDPOINTS.for_write(request, id)
    endpoint["secret"] = generate_token(SECRET_PREFIX)
    endpoint["modified_at"] = now(get_store(request))
    return endpoint
