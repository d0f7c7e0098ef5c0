"""Products: create, list, get, update, set benefits and delete (``/v1/products``).

Products and their prices are kept as ``domain/products.py`` says; a deleted product is removed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query, Response
from pydantic import Field, StringConstraints
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.benefits import get_benefit
from polar_emulator.domain.meters import get_meter
from polar_emulator.domain.products import get_price, get_product, render_product, serialize_product
from polar_emulator.domain.store import Store, collection, now
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import polar_error, validation_error, validation_item
from polar_emulator.resources.common import (
    Body,
    Currency,
    Interval,
    Metadata,
    Resource,
    TaxBehavior,
    text_contains,
)
from polar_emulator.tokens import new_id

MAX_PRICE_AMOUNT = 99_999_999

# -- request bodies -------------------------------------------------------------------------

Amount = Annotated[int, Field(ge=0, le=MAX_PRICE_AMOUNT)]


class _PriceBase(Body):
    price_currency: Currency = "usd"
    tax_behavior: TaxBehavior | None = None


class PriceFixedCreate(_PriceBase):
    amount_type: Literal["fixed"]
    price_amount: Amount


class PriceFreeCreate(_PriceBase):
    """Legacy ``free`` price: stored as ``fixed`` with ``price_amount`` 0."""

    amount_type: Literal["free"]


class PriceCustomCreate(_PriceBase):
    amount_type: Literal["custom"]
    minimum_amount: Amount = 50
    maximum_amount: Annotated[int, Field(ge=1, le=MAX_PRICE_AMOUNT)] | None = None
    preset_amount: Amount | None = None


class SeatTier(Body):
    min_seats: Annotated[int, Field(ge=1)]
    max_seats: Annotated[int, Field(ge=1)] | None = None
    price_per_seat: Amount


class SeatTiers(Body):
    seat_tier_type: Literal["volume", "graduated"] = "volume"
    tiers: Annotated[list[SeatTier], Field(min_length=1)]


class PriceSeatBasedCreate(_PriceBase):
    amount_type: Literal["seat_based"]
    seat_tiers: SeatTiers


class PriceMeteredUnitCreate(_PriceBase):
    amount_type: Literal["metered_unit"]
    meter_id: UUID
    unit_amount: Annotated[Decimal, Field(gt=0, max_digits=17, decimal_places=12)]
    cap_amount: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


PriceCreate = Annotated[
    PriceFixedCreate | PriceFreeCreate | PriceCustomCreate | PriceSeatBasedCreate | PriceMeteredUnitCreate,
    Field(discriminator="amount_type"),
]


class ExistingPrice(Body):
    id: UUID


class AttachedCustomFieldCreate(Body):
    custom_field_id: UUID
    required: bool


Name = Annotated[str, StringConstraints(min_length=3, max_length=64)]
Visibility = Literal["draft", "private", "public"]


class ProductCreate(Body):
    """ProductCreateRecurring and ProductCreateOneTime in one: ``recurring_interval`` tells them apart."""

    metadata: Metadata = Field(default_factory=dict)
    name: Name
    description: str | None = None
    visibility: Visibility = "public"
    prices: Annotated[list[PriceCreate], Field(min_length=1)]
    medias: list[UUID] | None = None
    attached_custom_fields: list[AttachedCustomFieldCreate] = Field(default_factory=list)
    organization_id: UUID | None = None
    recurring_interval: Interval | None = None
    recurring_interval_count: Annotated[int, Field(ge=1, le=999)] | None = None
    trial_interval: Interval | None = None
    trial_interval_count: Annotated[int, Field(ge=1, le=1000)] | None = None
    meter_interval: Interval | None = None
    meter_interval_count: Annotated[int, Field(ge=1, le=999)] | None = None


class ProductUpdate(Body):
    metadata: Metadata | None = None
    trial_interval: Interval | None = None
    trial_interval_count: Annotated[int, Field(ge=1, le=1000)] | None = None
    name: Name | None = None
    description: str | None = None
    recurring_interval: Interval | None = None
    recurring_interval_count: Annotated[int, Field(ge=1, le=999)] | None = None
    is_archived: bool | None = None
    visibility: Visibility | None = None
    prices: Annotated[list[ExistingPrice | PriceCreate], Field(min_length=1)] | None = None
    medias: list[UUID] | None = None
    attached_custom_fields: list[AttachedCustomFieldCreate] | None = None


class ProductBenefitsUpdate(Body):
    benefits: list[UUID]


# -- price validation ---------------------------------------------------------------------------


def _new_price(store: Store, schema: Any, product_id: str) -> dict[str, Any]:
    data = schema.model_dump(mode="json")
    price: dict[str, Any] = {
        "created_at": now(store),
        "modified_at": None,
        "id": new_id(),
        "source": "catalog",
        "amount_type": data["amount_type"],
        "price_currency": data["price_currency"],
        "tax_behavior": data["tax_behavior"],
        "is_archived": False,
        "product_id": product_id,
    }
    kind = data["amount_type"]
    if kind == "free":
        price.update(amount_type="fixed", price_amount=0)
    elif kind == "fixed":
        price["price_amount"] = data["price_amount"]
    elif kind == "custom":
        price.update({k: data[k] for k in ("minimum_amount", "maximum_amount", "preset_amount")})
    elif kind == "seat_based":
        tiers = sorted(data["seat_tiers"]["tiers"], key=lambda t: t["min_seats"])
        price["seat_tiers"] = {
            "seat_tier_type": data["seat_tiers"]["seat_tier_type"],
            "tiers": tiers,
            "minimum_seats": tiers[0]["min_seats"],
            "maximum_seats": tiers[-1]["max_seats"],
        }
    elif kind == "metered_unit":
        price.update(
            meter_id=data["meter_id"],
            unit_amount=format(schema.unit_amount.normalize(), "f"),
            cap_amount=data["cap_amount"],
        )
    return price


def _price_errors(schema: Any, index: int) -> list[dict]:
    """Amount consistency of a custom price."""
    if not isinstance(schema, PriceCustomCreate):
        return []
    errors = []
    low, high, preset = schema.minimum_amount, schema.maximum_amount, schema.preset_amount
    if high is not None and high < low:
        errors.append(
            validation_item(
                ["body", "prices", index, "maximum_amount"],
                "Maximum amount must be greater than or equal to minimum amount.",
                "value_error",
                high,
            )
        )
    if preset is not None and (preset < low or (high is not None and preset > high)):
        errors.append(
            validation_item(
                ["body", "prices", index, "preset_amount"],
                "Preset amount must be between minimum and maximum amounts.",
                "value_error",
                preset,
            )
        )
    return errors


def validate_prices(
    store: Store,
    schemas: list[Any],
    *,
    organization_id: str,
    recurring: bool,
    product: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[str], list[dict]]:
    """Resolve a ``prices`` list: (prices in order, ids of kept existing prices, errors).

    New prices are built but not stored; the caller stores them only when there are no errors.
    """
    prices: list[dict[str, Any]] = []
    kept: list[str] = []
    errors: list[dict] = []
    meters: set[str] = set()
    product_id = product["id"] if product else ""
    for index, schema in enumerate(schemas):
        if isinstance(schema, ExistingPrice):
            price_id = str(schema.id)
            if product is None or price_id not in {p["id"] for p in product["prices"]}:
                errors.append(
                    validation_item(
                        ["body", "prices", index], "Price does not exist.", "value_error", price_id
                    )
                )
                continue
            kept.append(price_id)
            prices.append(get_price(store, price_id))
            continue
        errors.extend(_price_errors(schema, index))
        if isinstance(schema, PriceMeteredUnitCreate):
            meter_id = str(schema.meter_id)
            if not recurring:
                errors.append(
                    validation_item(
                        ["body", "prices", index],
                        "Metered pricing is not supported on one-time products.",
                        "value_error",
                        schema.model_dump(mode="json"),
                    )
                )
                continue
            if meter_id in meters:
                errors.append(
                    validation_item(
                        ["body", "prices", index, "meter_id"],
                        "Meter is already used for another price.",
                        "value_error",
                        meter_id,
                    )
                )
                continue
            meter = get_meter(store, meter_id)
            if meter is None or meter["organization_id"] != organization_id:
                errors.append(
                    validation_item(
                        ["body", "prices", index, "meter_id"],
                        "Meter does not exist.",
                        "value_error",
                        meter_id,
                    )
                )
                continue
            meters.add(meter_id)
        prices.append(_new_price(store, schema, product_id))
    if not prices and not errors:
        errors.append(validation_item(["body", "prices"], "At least one price is required.", "too_short", []))
    errors.extend(_combination_errors(store, prices, organization_id))
    return prices, kept, errors


def _combination_errors(store: Store, prices: list[dict[str, Any]], organization_id: str) -> list[dict]:
    """Per currency: one fixed and/or one seat-based, or one custom/free alone; any metered; one tax behavior."""
    default_tax = store.organizations[organization_id]["default_tax_behavior"]
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for price in prices:
        by_currency.setdefault(price["price_currency"], []).append(price)
    errors = []
    for currency, group in by_currency.items():
        static = [p for p in group if p["amount_type"] != "metered_unit"]
        kinds = [p["amount_type"] for p in static]
        alone = any(
            p["amount_type"] == "custom" or (p["amount_type"] == "fixed" and p["price_amount"] == 0)
            for p in static
        )
        if (
            kinds.count("fixed") > 1
            or kinds.count("seat_based") > 1
            or kinds.count("custom") > 1
            or (alone and len(static) > 1)
        ):
            errors.append(
                validation_item(
                    ["body", "prices"], "Only one static price is allowed.", "value_error", currency
                )
            )
        if len({p["tax_behavior"] or default_tax for p in group}) > 1:
            errors.append(
                validation_item(
                    ["body", "prices"],
                    "All prices in the same currency must have the same tax behavior.",
                    "value_error",
                    currency,
                )
            )
    return errors


def _extras_errors(
    medias: list[UUID] | None, custom_fields: list[AttachedCustomFieldCreate] | None
) -> list[dict]:
    """The emulator has no files nor custom fields, so any reference to one does not exist."""
    errors = [
        validation_item(
            ["body", "medias", i], "File does not exist or is not yet uploaded.", "value_error", str(f)
        )
        for i, f in enumerate(medias or [])
    ]
    errors += [
        validation_item(
            ["body", "attached_custom_fields", i],
            "Custom field does not exist.",
            "value_error",
            str(f.custom_field_id),
        )
        for i, f in enumerate(custom_fields or [])
    ]
    return errors


def _store_prices(store: Store, prices: list[dict[str, Any]], product_id: str) -> list[str]:
    table = collection(store, "product_prices")
    for price in prices:
        price["product_id"] = product_id
        table[price["id"]] = price
    return [p["id"] for p in prices]


# -- routes -----------------------------------------------------------------------------------


PRODUCTS = Resource(
    "products",
    manage=("products:manage", "manage products"),
    sortable=("created_at", "name", "price_amount_type", "price_amount"),
    lookup=get_product,
)
router = PRODUCTS.router


def _first_price(item: dict[str, Any]) -> dict[str, Any] | None:
    return item["prices"][0] if item["prices"] else None


def _amount_type_rank(item: dict[str, Any]) -> int | None:
    price = _first_price(item)
    if price is None:
        return None
    if price["amount_type"] == "fixed" and price["price_amount"] == 0:
        return 1
    return {"custom": 2, "fixed": 3}.get(price["amount_type"], 4)


def _amount(item: dict[str, Any]) -> int | None:
    price = _first_price(item)
    if price is None:
        return None
    if price["amount_type"] == "fixed":
        return price["price_amount"]
    if price["amount_type"] == "custom":
        return price["minimum_amount"]
    return -1


def _updated(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``modified_at``, emit ``product.updated`` and return the product's API shape."""
    product["modified_at"] = now(store)
    emit_event(store, product["organization_id"], "product.updated", serialize_product(store, product))
    return serialize_product(store, product)


@router.post("/", status_code=201)
async def create_product(request: Request, body: ProductCreate) -> dict:
    _, organization_id = PRODUCTS.new_owner(request, body.organization_id)
    store = get_store(request)
    recurring = body.recurring_interval is not None
    errors: list[dict] = []
    if not recurring:
        for field in ("recurring_interval_count", "trial_interval", "trial_interval_count", "meter_interval"):
            if getattr(body, field) is not None:
                errors.append(
                    validation_item(
                        ["body", field],
                        "Only supported on recurring products.",
                        "value_error",
                        getattr(body, field),
                    )
                )
    prices, _, price_errors = validate_prices(
        store, body.prices, organization_id=organization_id, recurring=recurring, product=None
    )
    errors += price_errors + _extras_errors(body.medias, body.attached_custom_fields)
    if errors:
        raise validation_error(*errors)
    product_id = new_id()
    product: dict[str, Any] = {
        "id": product_id,
        "created_at": now(store),
        "modified_at": None,
        "trial_interval": body.trial_interval,
        "trial_interval_count": body.trial_interval_count,
        "name": body.name,
        "description": body.description,
        "visibility": body.visibility,
        "recurring_interval": body.recurring_interval,
        "recurring_interval_count": (body.recurring_interval_count or 1) if recurring else None,
        "meter_interval": body.meter_interval,
        "meter_interval_count": body.meter_interval_count,
        "is_recurring": recurring,
        "is_archived": False,
        "organization_id": organization_id,
        "metadata": dict(body.metadata),
        "prices": [],
        "benefits": [],
        "medias": [],
        "attached_custom_fields": [],
        "is_deletable": True,
    }
    render_product(store, product, _store_prices(store, prices, product_id))
    collection(store, "products")[product_id] = product
    emit_event(store, organization_id, "product.created", serialize_product(store, product))
    return serialize_product(store, product)


@router.get("/")
async def list_products(
    request: Request,
    id: list[UUID] | None = Query(None),
    organization_id: list[UUID] | None = Query(None),
    query: str | None = Query(None),
    is_archived: bool | None = Query(None),
    is_recurring: bool | None = Query(None),
    benefit_id: list[UUID] | None = Query(None),
    visibility: list[Visibility] | None = Query(None),
) -> dict:
    ids = {str(i) for i in id} if id else None
    benefit_ids = {str(b) for b in benefit_id} if benefit_id else None
    return PRODUCTS.list_records(
        request,
        lambda p: (
            (ids is None or p["id"] in ids)
            and text_contains(p["name"], query)
            and (is_archived is None or p["is_archived"] == is_archived)
            and (is_recurring is None or p["is_recurring"] == is_recurring)
            and (benefit_ids is None or not benefit_ids.isdisjoint(b["id"] for b in p["benefits"]))
            and (visibility is None or p["visibility"] in visibility)
        ),
        serialize=serialize_product,
        keys={"price_amount_type": _amount_type_rank, "price_amount": _amount},
    )


@router.get("/{id}")
async def get_product_route(request: Request, id: UUID) -> dict:
    product = PRODUCTS.read_one(request, id)
    return serialize_product(get_store(request), product)


@router.patch("/{id}")
async def update_product(request: Request, id: UUID, body: ProductUpdate) -> dict:
    _, product = PRODUCTS.for_write(request, id)
    store = get_store(request)
    errors: list[dict] = []
    for field in ("recurring_interval", "recurring_interval_count"):
        value = getattr(body, field)
        if value is not None and value != product[field]:
            errors.append(
                validation_item(
                    ["body", field], "Recurring interval cannot be changed.", "value_error", value
                )
            )
    if not product["is_recurring"]:
        for field in ("trial_interval", "trial_interval_count"):
            if getattr(body, field) is not None:
                errors.append(
                    validation_item(
                        ["body", field],
                        "Trials are only supported on recurring products.",
                        "value_error",
                        getattr(body, field),
                    )
                )
    prices: list[dict[str, Any]] | None = None
    kept: list[str] = []
    if body.prices is not None:
        prices, kept, price_errors = validate_prices(
            store,
            body.prices,
            organization_id=product["organization_id"],
            recurring=product["is_recurring"],
            product=product,
        )
        errors += price_errors
    errors += _extras_errors(body.medias, body.attached_custom_fields)
    if errors:
        raise validation_error(*errors)

    if prices is not None:
        new_prices = [p for p in prices if p["id"] not in kept]
        _store_prices(store, new_prices, product["id"])
        for old in product["prices"]:
            if old["id"] not in kept:
                archived = get_price(store, old["id"])
                archived["is_archived"] = True
                archived["modified_at"] = now(store)
        render_product(store, product, [p["id"] for p in prices])
    changes = body.model_dump(
        mode="json",
        exclude_unset=True,
        exclude_none=True,
        exclude={
            "prices",
            "medias",
            "attached_custom_fields",
            "recurring_interval",
            "recurring_interval_count",
        },
    )
    product.update(changes)
    return _updated(store, product)


@router.post("/{id}/benefits")
async def update_product_benefits(request: Request, id: UUID, body: ProductBenefitsUpdate) -> dict:
    subject, product = PRODUCTS.for_write(request, id)
    store = get_store(request)
    reachable = subject.organization_ids()
    benefit_ids: list[str] = []
    for index, benefit_id in enumerate(body.benefits):
        benefit = get_benefit(store, benefit_id)
        if benefit is None or benefit["organization_id"] not in reachable:
            raise validation_error(
                validation_item(
                    ["body", "benefits", index], "Benefit does not exist.", "value_error", str(benefit_id)
                )
            )
        if benefit["organization_id"] != product["organization_id"]:
            raise validation_error(
                validation_item(
                    ["body", "benefits", index],
                    "Benefit must be on the same organization as the product.",
                    "value_error",
                    str(benefit_id),
                )
            )
        if not benefit["selectable"] and benefit["id"] not in {b["id"] for b in product["benefits"]}:
            raise validation_error(
                validation_item(
                    ["body", "benefits", index], "Benefit is not selectable.", "value_error", str(benefit_id)
                )
            )
        if benefit["id"] not in benefit_ids:
            benefit_ids.append(benefit["id"])
    product["benefits"] = [{"id": bid} for bid in benefit_ids]
    render_product(store, product)
    return _updated(store, product)


@router.delete("/{id}", status_code=204)
async def delete_product(request: Request, id: UUID) -> Response:
    """polar-sdk 1.0.2's delete: only products nobody bought (``is_deletable``), else 409."""
    _, product = PRODUCTS.for_write(request, id)
    if not product.get("is_deletable", True):
        raise polar_error(
            409, "ProductNotDeletable", "This product has orders or subscriptions and cannot be deleted."
        )
    collection(get_store(request), "products").pop(product["id"], None)
    return Response(status_code=204)
