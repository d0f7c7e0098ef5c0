"""Customer sessions (portal access): ``POST /v1/customer-sessions/``.

Sessions live in ``store.collections["customer_sessions"]`` as the ``CustomerSession`` shape
without the nested customer (added on serialization) plus ``organization_id``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, note
from polar_emulator.clock import isoformat
from polar_emulator.domain.customers import customers_of, find_by_external_id, serialize_customer
from polar_emulator.domain.store import Store
from polar_emulator.errors import polar_error, validation_error, validation_item
from polar_emulator.tokens import generate_token, new_id

router = APIRouter(prefix="/v1/customer-sessions", tags=["customer-sessions"])

SCOPES = ("customer_sessions:write",)
TTL_SECONDS = 3600


class CustomerSessionCustomerIDCreate(BaseModel):
    member_id: uuid.UUID | None = None
    external_member_id: str | None = None
    return_url: str | None = None
    customer_id: uuid.UUID


class CustomerSessionCustomerExternalIDCreate(BaseModel):
    member_id: uuid.UUID | None = None
    external_member_id: str | None = None
    return_url: str | None = None
    external_customer_id: str


def serialize_customer_session(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    data = {k: copy.deepcopy(v) for k, v in session.items() if k != "organization_id"}
    data["customer"] = serialize_customer(customers_of(store)[session["customer_id"]])
    return data


def new_customer_session(
    store: Store, customer: dict[str, Any], base_url: str, return_url: str | None = None
) -> dict[str, Any]:
    now = store.clock.now()
    token = generate_token("polar_cst_")
    org = store.organizations.get(customer["organization_id"], {})
    query = {"customer_session_token": token}
    if customer.get("email"):
        query["email"] = customer["email"]
    session = {
        "created_at": isoformat(now),
        "modified_at": None,
        "id": new_id(),
        "token": token,
        "expires_at": isoformat(now + timedelta(seconds=TTL_SECONDS)),
        "return_url": return_url,
        "customer_portal_url": f"{base_url.rstrip('/')}/{org.get('slug', '')}/portal?{urlencode(query)}",
        "customer_id": customer["id"],
        "organization_id": customer["organization_id"],
    }
    store.collections["customer_sessions"][session["id"]] = session
    return session


@router.post("/", status_code=201)
async def create_customer_session(
    request: Request, body: CustomerSessionCustomerIDCreate | CustomerSessionCustomerExternalIDCreate
) -> dict[str, Any]:
    subject = authenticate(request, SCOPES)
    store = get_store(request)
    reachable = set(subject.organization_ids())
    if isinstance(body, CustomerSessionCustomerIDCreate):
        customer = customers_of(store).get(str(body.customer_id))
        if customer is None or customer["deleted_at"] or customer["organization_id"] not in reachable:
            raise validation_error(
                validation_item(
                    ["body", "customer_id"], "Customer does not exist.", "value_error", str(body.customer_id)
                )
            )
    else:
        found = find_by_external_id(store, reachable, body.external_customer_id)
        if not found:
            raise validation_error(
                validation_item(
                    ["body", "external_customer_id"],
                    "Customer does not exist.",
                    "value_error",
                    body.external_customer_id,
                )
            )
        if len(found) > 1:
            raise polar_error(
                409,
                "AmbiguousExternalCustomerID",
                "Multiple customers match this external ID across your organizations; "
                "use customer_id or a token for a single organization.",
            )
        customer = found[0]
    if body.return_url is not None and not body.return_url.startswith(("http://", "https://")):
        raise validation_error(
            validation_item(
                ["body", "return_url"],
                "Input should be a valid URL, relative URL without a base",
                "url_parsing",
                body.return_url,
            )
        )
    note(request, organization_id=customer["organization_id"])
    subject.require(customer["organization_id"], "customers:manage", "manage customers")
    session = new_customer_session(store, customer, str(request.base_url), body.return_url)
    return serialize_customer_session(store, session)
