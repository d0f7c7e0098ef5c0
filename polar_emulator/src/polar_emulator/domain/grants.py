"""Benefit grants: what a customer holds because of a subscription or an order.

Grants live in ``store.collections["benefit_grants"]`` as flat records (the ``BenefitGrant``
fields plus ``organization_id`` and a ``_benefit`` snapshot); :func:`serialize_grant_webhook` builds the
``BenefitGrantWebhook`` shape (with ``customer`` and the full ``benefit``).
"""

from __future__ import annotations

import copy
from typing import Any, overload

from polar_emulator.clock import isoformat
from polar_emulator.domain.customers import customers_of, serialize_customer
from polar_emulator.domain.store import Store
from polar_emulator.tokens import new_id

_INTERNAL = ("organization_id",)


def grants_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["benefit_grants"]


@overload
def benefit_of(store: Store, benefit_id: str, fallback: dict[str, Any]) -> dict[str, Any]: ...
@overload
def benefit_of(store: Store, benefit_id: str, fallback: None = None) -> dict[str, Any] | None: ...
def benefit_of(
    store: Store, benefit_id: str, fallback: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The live benefit from the benefits collection, else the copy embedded in a product."""
    benefit: dict[str, Any] | None = store.collections["benefits"].get(benefit_id)
    return benefit or fallback


def new_grant(
    store: Store,
    customer: dict[str, Any],
    benefit: dict[str, Any],
    *,
    subscription_id: str | None,
    order_id: str | None,
) -> dict[str, Any]:
    now = isoformat(store.clock.now())
    grant = {
        "created_at": now,
        "modified_at": None,
        "id": new_id(),
        "granted_at": now,
        "is_granted": True,
        "revoked_at": None,
        "is_revoked": False,
        "subscription_id": subscription_id,
        "order_id": order_id,
        "customer_id": customer["id"],
        "member_id": None,
        "benefit_id": benefit["id"],
        "error": None,
        "properties": {},
        "previous_properties": None,
        "organization_id": customer["organization_id"],
        "_benefit": copy.deepcopy(benefit),  # used when the benefit is not in the benefits collection
    }
    grants_of(store)[grant["id"]] = grant
    return grant


def serialize_grant_webhook(store: Store, grant: dict[str, Any]) -> dict[str, Any]:
    """``BenefitGrantWebhook``: the grant with its customer and full benefit."""
    data = {k: copy.deepcopy(v) for k, v in grant.items() if k not in _INTERNAL and not k.startswith("_")}
    data["customer"] = serialize_customer(customers_of(store)[grant["customer_id"]])
    data["member"] = None
    data["benefit"] = copy.deepcopy(benefit_of(store, grant["benefit_id"], grant["_benefit"]))
    return data


def serialize_state_grant(store: Store, grant: dict[str, Any]) -> dict[str, Any]:
    """``CustomerStateBenefitGrant``."""
    benefit = benefit_of(store, grant["benefit_id"], grant["_benefit"]) or {}
    return {
        "id": grant["id"],
        "created_at": grant["created_at"],
        "modified_at": grant["modified_at"],
        "granted_at": grant["granted_at"],
        "benefit_id": grant["benefit_id"],
        "benefit_type": benefit.get("type", "custom"),
        "benefit_metadata": copy.deepcopy(benefit.get("metadata", {})),
        "properties": copy.deepcopy(grant["properties"]),
    }


def active_grants(store: Store, customer_id: str) -> list[dict[str, Any]]:
    return [g for g in grants_of(store).values() if g["customer_id"] == customer_id and g["is_granted"]]


def revoke_grant(store: Store, grant: dict[str, Any]) -> None:
    now = isoformat(store.clock.now())
    grant.update(is_granted=False, is_revoked=True, revoked_at=now, modified_at=now)


def find_grant(
    store: Store, customer_id: str, benefit_id: str, *, subscription_id: str | None, order_id: str | None
) -> dict[str, Any] | None:
    """The one grant row of a customer, benefit and scope (a subscription or an order)."""
    return next(
        (
            g
            for g in grants_of(store).values()
            if g["customer_id"] == customer_id
            and g["benefit_id"] == benefit_id
            and g["subscription_id"] == subscription_id
            and g["order_id"] == order_id
        ),
        None,
    )


def grant_benefit(
    store: Store,
    customer: dict[str, Any],
    benefit: dict[str, Any],
    *,
    subscription_id: str | None,
    order_id: str | None,
) -> dict[str, Any] | None:
    """Grant ``benefit``, reusing a revoked row as Polar does (same grant id); None if already granted."""
    grant = find_grant(
        store, customer["id"], benefit["id"], subscription_id=subscription_id, order_id=order_id
    )
    if grant is None:
        return new_grant(store, customer, benefit, subscription_id=subscription_id, order_id=order_id)
    if grant["is_granted"]:
        return None
    now = isoformat(store.clock.now())
    grant.update(
        is_granted=True,
        granted_at=now,
        is_revoked=False,
        revoked_at=None,
        modified_at=now,
        _benefit=copy.deepcopy(benefit),
    )
    return grant
