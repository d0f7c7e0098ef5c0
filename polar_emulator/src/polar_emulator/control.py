"""The control API under ``/_emulator/``: JSON in and out, never part of Polar's API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.oauth import DEFAULT_CLIENT_SCOPE, OAuth2Client
from polar_emulator.tokens import generate_token

router = APIRouter(prefix="/_emulator", tags=["emulator"])


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    store = get_store(request)
    hook = store.extra.get("on_reset")
    store.reset()
    if callable(hook):
        hook()
    return {"ok": True}


class ClientIn(BaseModel):
    name: str
    redirect_uris: list[str]
    scope: str = DEFAULT_CLIENT_SCOPE
    public: bool = False


@router.post("/clients", status_code=201)
async def create_client(request: Request, body: ClientIn) -> dict[str, Any]:
    store = get_store(request)
    client = store.add_client(
        OAuth2Client(
            client_id=generate_token("polar_ci_"),
            client_secret=None if body.public else generate_token("polar_cs_"),
            client_name=body.name,
            redirect_uris=body.redirect_uris,
            scope=body.scope,
            token_endpoint_auth_method="none" if body.public else "client_secret_post",
        )
    )
    return {"client_id": client.client_id, "client_secret": client.client_secret}


class OrganizationIn(BaseModel):
    name: str
    slug: str


class UserIn(BaseModel):
    email: str
    organizations: list[OrganizationIn] = Field(default_factory=list)


@router.post("/users", status_code=201)
async def create_user(request: Request, body: UserIn) -> dict[str, Any]:
    store = get_store(request)
    user = store.add_user(body.email)
    orgs = [store.add_organization(o.name, o.slug, owner=user) for o in body.organizations]
    return {
        "id": user.id,
        "email": user.email,
        "organizations": [{"id": o["id"], "name": o["name"], "slug": o["slug"]} for o in orgs],
    }


class FaultIn(BaseModel):
    path: str
    method: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0)
    rate: float | None = Field(default=None, ge=0, le=1)
    count: int | None = Field(default=None, ge=1)
    # "before": answer without running the call; "after": run it, then answer the failure
    # (the write happened but the caller never saw the response).
    when: str = Field(default="before", pattern="^(before|after)$")


@router.post("/faults", status_code=201)
async def add_fault(request: Request, body: FaultIn) -> dict[str, Any]:
    fault = body.model_dump()
    fault["hits"] = 0
    get_store(request).faults.append(fault)
    return fault


@router.get("/faults")
async def list_faults(request: Request) -> list[dict[str, Any]]:
    return get_store(request).faults


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    get_store(request).faults.clear()
    return {"ok": True}


class RateLimitIn(BaseModel):
    per_minute: int | None = Field(default=None, ge=1)


@router.post("/rate-limit")
async def set_rate_limit(request: Request, body: RateLimitIn) -> dict[str, Any]:
    store = get_store(request)
    store.rate_limit_per_minute = body.per_minute
    store.rate_windows.clear()
    return {"per_minute": body.per_minute}


class ClockIn(BaseModel):
    advance_seconds: float = Field(ge=0)


@router.post("/clock")
async def advance_clock(request: Request, body: ClockIn) -> dict[str, Any]:
    store = get_store(request)
    store.clock.advance(body.advance_seconds)
    return {"offset_seconds": store.clock.offset, "now": store.clock.now().isoformat()}


@router.get("/requests")
async def list_requests(request: Request) -> list[dict[str, Any]]:
    return list(get_store(request).requests)


@router.delete("/requests")
async def clear_requests(request: Request) -> dict[str, Any]:
    get_store(request).requests.clear()
    return {"ok": True}
