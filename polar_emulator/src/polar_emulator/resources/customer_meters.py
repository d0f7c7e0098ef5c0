"""Customer meters: list and get under ``/v1/customer-meters/`` (scope ``customer_meters:read``),
kept as ``domain/customer_meters.py`` says. Rows on archived meters are listed only when the
``meter_id`` filter is given, as Polar does; rows of deleted customers never are.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, list_organization_ids, reachable_or_404
from polar_emulator.domain.customer_meters import (
    customer_meters_of,
    refresh,
    refresh_all,
    serialize_customer_meter,
)
from polar_emulator.domain.customers import customers_of
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import sort_by_keys

router = APIRouter(prefix="/v1/customer-meters", tags=["customer-meters"])
READ = ("customer_meters:read",)


@router.get("/")
async def list_customer_meters(request: Request) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
    org_ids = list_organization_ids(request, subject)
    params = request.query_params
    customer_ids = params.getlist("customer_id")
    external_ids = params.getlist("external_customer_id")
    meter_ids = params.getlist("meter_id")
    refresh_all(store, org_ids)
    customers = customers_of(store)
    meters = store.collections["meters"]

    def keep(row: dict[str, Any]) -> bool:
        customer = customers[row["customer_id"]]
        meter = meters[row["meter_id"]]
        return (
            row["organization_id"] in org_ids
            and customer["deleted_at"] is None
            and (not customer_ids or row["customer_id"] in customer_ids)
            and (not external_ids or customer["external_id"] in external_ids)
            and (row["meter_id"] in meter_ids if meter_ids else not meter.get("archived_at"))
        )

    items = [r for r in customer_meters_of(store).values() if keep(r)]
    items = sort_by_keys(
        request,
        items,
        {
            "created_at": lambda r: r["created_at"],
            "modified_at": lambda r: r["modified_at"],
            "customer_id": lambda r: r["customer_id"],
            "customer_name": lambda r: customers[r["customer_id"]]["name"],
            "meter_id": lambda r: r["meter_id"],
            "meter_name": lambda r: meters[r["meter_id"]]["name"],
            "consumed_units": lambda r: r["consumed_units"],
            "credited_units": lambda r: r["credited_units"],
            "balance": lambda r: r["balance"],
        },
        default=("-modified_at",),
    )
    return paginate(request, [serialize_customer_meter(store, r) for r in items])


@router.get("/{id}")
async def get_customer_meter(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
    row = customer_meters_of(store).get(str(id))
    if row is not None and customers_of(store)[row["customer_id"]]["deleted_at"] is not None:
        row = None
    row = reachable_or_404(request, subject, row)
    refresh(store, customers_of(store)[row["customer_id"]])
    return serialize_customer_meter(store, row)
