"""The control API's simulated purchase: ``POST /_emulator/simulate/purchase`` (see
``domain/purchases.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.purchases import simulate_purchase
from polar_emulator.errors import validation_error, validation_item

router = APIRouter(prefix="/_emulator", tags=["emulator"])


class PurchaseIn(BaseModel):
    organization_id: str
    product_id: str
    external_customer_id: str
    customer_email: str | None = None


@router.post("/simulate/purchase", status_code=201)
async def simulate_purchase_route(request: Request, body: PurchaseIn) -> dict[str, Any]:
    store = get_store(request)
    if body.organization_id not in store.organizations:
        raise validation_error(
            validation_item(
                ["body", "organization_id"], "Organization not found.", "value_error", body.organization_id
            )
        )
    return simulate_purchase(
        store,
        body.organization_id,
        body.product_id,
        body.external_customer_id,
        str(request.base_url),
        customer_email=body.customer_email,
    )
