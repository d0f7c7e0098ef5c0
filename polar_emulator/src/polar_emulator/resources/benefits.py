"""Benefits: create, list, get, update and delete (``/v1/benefits``).

Supported types: ``custom``, ``feature_flag``, ``license_keys`` and ``meter_credit``; the types that
need a third-party integration (Discord, GitHub, downloadables, Slack) are refused with a 422.
Benefits are kept API-shaped in ``store.collections["benefits"]``; a deleted one stays there with
``is_deleted: true`` and is invisible to the API.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query, Response
from pydantic import Field, StringConstraints
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.benefits import get_benefit
from polar_emulator.domain.meters import get_meter
from polar_emulator.domain.products import refresh_products
from polar_emulator.domain.store import Store, collection, now
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import not_found, validation_error, validation_item
from polar_emulator.resources.common import Body, Metadata, Resource, text_contains
from polar_emulator.tokens import new_id

BenefitType = Literal[
    "custom",
    "discord",
    "github_repository",
    "downloadables",
    "license_keys",
    "meter_credit",
    "feature_flag",
    "slack_shared_channel",
]

Description = Annotated[str, StringConstraints(min_length=3, max_length=42)]
Visibility = Literal["draft", "private", "public"]
Int32Positive = Annotated[int, Field(gt=0, le=2**31 - 1)]


class CustomProperties(Body):
    note: str | None = None


class FeatureFlagProperties(Body):
    pass


class LicenseKeyExpiration(Body):
    ttl: Annotated[int, Field(gt=0)]
    timeframe: Literal["year", "month", "day"]


class LicenseKeyActivations(Body):
    limit: Int32Positive
    enable_customer_admin: bool


class LicenseKeysProperties(Body):
    prefix: str | None = None
    expires: LicenseKeyExpiration | None = None
    activations: LicenseKeyActivations | None = None
    limit_usage: Int32Positive | None = None


class MeterCreditProperties(Body):
    units: Int32Positive
    rollover: bool
    meter_id: UUID


class _CreateBase(Body):
    metadata: Metadata = Field(default_factory=dict)
    description: Description
    organization_id: UUID | None = None
    visibility: Visibility | None = None


class CustomCreate(_CreateBase):
    type: Literal["custom"]
    properties: CustomProperties


class FeatureFlagCreate(_CreateBase):
    type: Literal["feature_flag"]
    properties: FeatureFlagProperties


class LicenseKeysCreate(_CreateBase):
    type: Literal["license_keys"]
    properties: LicenseKeysProperties


class MeterCreditCreate(_CreateBase):
    type: Literal["meter_credit"]
    properties: MeterCreditProperties


BenefitCreate = Annotated[
    CustomCreate | FeatureFlagCreate | LicenseKeysCreate | MeterCreditCreate, Field(discriminator="type")
]


class _UpdateBase(Body):
    metadata: Metadata | None = None
    description: Description | None = None
    visibility: Visibility | None = None


class CustomUpdate(_UpdateBase):
    type: Literal["custom"]
    properties: CustomProperties | None = None


class FeatureFlagUpdate(_UpdateBase):
    type: Literal["feature_flag"]
    properties: FeatureFlagProperties | None = None


class LicenseKeysUpdate(_UpdateBase):
    type: Literal["license_keys"]
    properties: LicenseKeysProperties | None = None


class MeterCreditUpdate(_UpdateBase):
    type: Literal["meter_credit"]
    properties: MeterCreditProperties | None = None


BenefitUpdate = Annotated[
    CustomUpdate | FeatureFlagUpdate | LicenseKeysUpdate | MeterCreditUpdate, Field(discriminator="type")
]


def _properties(store: Store, benefit_type: str, props: Any, organization_id: str) -> dict[str, Any]:
    """Validate and fill in the stored properties shape of a benefit type."""
    data = props.model_dump(mode="json")
    if benefit_type == "meter_credit":
        meter = get_meter(store, data["meter_id"])
        if meter is None or meter["organization_id"] != organization_id:
            raise validation_error(
                validation_item(
                    ["body", "properties", "meter_id"],
                    "Meter does not exist.",
                    "value_error",
                    data["meter_id"],
                )
            )
    return data


BENEFITS = Resource(
    "benefits",
    manage=("products:manage", "manage benefits"),
    sortable=("created_at", "description", "type", "user_order"),
    lookup=get_benefit,
)
router = BENEFITS.router


@router.post("/", status_code=201)
async def create_benefit(request: Request, body: BenefitCreate) -> dict:
    _, organization_id = BENEFITS.new_owner(request, body.organization_id)
    store = get_store(request)
    benefit: dict[str, Any] = {
        "id": new_id(),
        "created_at": now(store),
        "modified_at": None,
        "type": body.type,
        "description": body.description,
        "selectable": True,
        "deletable": True,
        "is_deleted": False,
        "organization_id": organization_id,
        "metadata": dict(body.metadata),
        "visibility": body.visibility or "public",
        "visibility_configurable": True,
        "properties": _properties(store, body.type, body.properties, organization_id),
    }
    collection(store, "benefits")[benefit["id"]] = benefit
    emit_event(store, organization_id, "benefit.created", copy.deepcopy(benefit))
    return benefit


@router.get("/")
async def list_benefits(
    request: Request,
    organization_id: list[UUID] | None = Query(None),
    type: list[BenefitType] | None = Query(None),
    id: list[UUID] | None = Query(None),
    exclude_id: list[UUID] | None = Query(None),
    query: str | None = Query(None),
) -> dict:
    ids = {str(i) for i in id} if id else None
    excluded = {str(i) for i in exclude_id or []}
    return BENEFITS.list_records(
        request,
        lambda b: (
            not b["is_deleted"]
            and (type is None or b["type"] in type)
            and (ids is None or b["id"] in ids)
            and b["id"] not in excluded
            and text_contains(b["description"], query)
        ),
    )


@router.get("/{id}")
async def get_benefit_route(request: Request, id: UUID) -> dict:
    return BENEFITS.read_one(request, id)


@router.patch("/{id}")
async def update_benefit(request: Request, id: UUID, body: BenefitUpdate) -> dict:
    _, benefit = BENEFITS.for_write(request, id)
    if body.type != benefit["type"]:
        raise validation_error(
            validation_item(
                ["body", "type"], f"Input should be '{benefit['type']}'", "literal_error", body.type
            )
        )
    store = get_store(request)
    changes = body.model_dump(
        mode="json", exclude_unset=True, exclude_none=True, exclude={"type", "properties"}
    )
    if body.properties is not None:
        changes["properties"] = _properties(
            store, benefit["type"], body.properties, benefit["organization_id"]
        )
    benefit.update(changes)
    benefit["modified_at"] = now(store)
    refresh_products(store, benefit["organization_id"])
    emit_event(store, benefit["organization_id"], "benefit.updated", copy.deepcopy(benefit))
    return benefit


@router.delete("/{id}", status_code=204)
async def delete_benefit(request: Request, id: UUID) -> Response:
    _, benefit = BENEFITS.for_write(request, id)
    if not benefit["deletable"]:
        raise not_found()
    benefit["is_deleted"] = True
    benefit["modified_at"] = now(get_store(request))
    refresh_products(get_store(request), benefit["organization_id"])
    return Response(status_code=204)
