"""Meters: create, list, get and update (``/v1/meters``), kept as ``domain/meters.py`` says."""

from __future__ import annotations

from typing import Annotated, Literal, Union
from uuid import UUID

from fastapi import Query
from pydantic import Field, StringConstraints
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.meters import get_meter
from polar_emulator.domain.products import refresh_products
from polar_emulator.domain.store import collection, now
from polar_emulator.errors import validation_error, validation_item
from polar_emulator.resources.common import Body, Metadata, Resource, text_contains
from polar_emulator.tokens import new_id


class FilterClause(Body):
    property: str
    operator: Literal["eq", "ne", "gt", "gte", "lt", "lte", "like", "not_like"]
    value: (
        Annotated[str, StringConstraints(max_length=1000)]
        | Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
        | bool
    )


class Filter(Body):
    conjunction: Literal["and", "or"]
    clauses: list[Union[FilterClause, Filter]]  # noqa: UP007


class CountAggregation(Body):
    func: Literal["count"] = "count"


class PropertyAggregation(Body):
    func: Literal["sum", "max", "min", "avg"]
    property: str


class UniqueAggregation(Body):
    func: Literal["unique"] = "unique"
    property: str


Aggregation = Annotated[
    CountAggregation | PropertyAggregation | UniqueAggregation, Field(discriminator="func")
]
MeterName = Annotated[str, StringConstraints(min_length=3)]


class MeterCreate(Body):
    metadata: Metadata = Field(default_factory=dict)
    name: MeterName
    unit: Literal["scalar", "token", "custom"] = "scalar"
    custom_label: str | None = None
    custom_multiplier: Annotated[int, Field(gt=0)] | None = None
    filter: Filter
    aggregation: Aggregation
    organization_id: UUID | None = None


class MeterUpdate(Body):
    metadata: Metadata | None = None
    name: MeterName | None = None
    unit: Literal["scalar", "token", "custom"] | None = None
    custom_label: str | None = None
    custom_multiplier: Annotated[int, Field(gt=0)] | None = None
    filter: Filter | None = None
    aggregation: Aggregation | None = None
    is_archived: bool | None = None


def _check_unit(unit: str, custom_label: str | None) -> None:
    if unit == "custom" and not custom_label:
        raise validation_error(
            validation_item(
                ["body", "custom_label"], "custom_label is required when unit is custom.", "missing", None
            )
        )


METERS = Resource(
    "meters", manage=("products:manage", "manage meters"), sortable=("created_at", "name"), lookup=get_meter
)
router = METERS.router


@router.post("/", status_code=201)
async def create_meter(request: Request, body: MeterCreate) -> dict:
    _, organization_id = METERS.new_owner(request, body.organization_id)
    _check_unit(body.unit, body.custom_label)
    store = get_store(request)
    data = body.model_dump(mode="json", exclude={"organization_id"})
    meter = {
        "id": new_id(),
        "created_at": now(store),
        "modified_at": None,
        "organization_id": organization_id,
        "archived_at": None,
        **data,
    }
    collection(store, "meters")[meter["id"]] = meter
    return meter


@router.get("/")
async def list_meters(
    request: Request,
    query: str | None = Query(None),
    is_archived: bool | None = Query(None),
    organization_id: list[UUID] | None = Query(None),
) -> dict:
    return METERS.list_records(
        request,
        lambda m: (
            text_contains(m["name"], query)
            and (is_archived is None or (m["archived_at"] is not None) == is_archived)
        ),
    )


@router.get("/{id}")
async def get_meter_route(request: Request, id: UUID) -> dict:
    return METERS.read_one(request, id)


@router.patch("/{id}")
async def update_meter(request: Request, id: UUID, body: MeterUpdate) -> dict:
    _, meter = METERS.for_write(request, id)
    changes = body.model_dump(mode="json", exclude_unset=True, exclude_none=True, exclude={"is_archived"})
    updated = {**meter, **changes}
    _check_unit(updated["unit"], updated["custom_label"])
    store = get_store(request)
    meter.update(changes)
    if body.is_archived is not None:
        meter["archived_at"] = (meter["archived_at"] or now(store)) if body.is_archived else None
    meter["modified_at"] = now(store)
    refresh_products(store, meter["organization_id"])
    return meter
