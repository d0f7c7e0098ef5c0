"""Benefits, kept API-shaped in ``store.collections["benefits"]``; a deleted one stays there with
``is_deleted: true`` and is invisible to the API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from polar_emulator.domain.store import Store, collection


def get_benefit(store: Store, benefit_id: str | UUID) -> dict[str, Any] | None:
    """The stored (API-shaped) benefit, or None when unknown or deleted."""
    benefit = collection(store, "benefits").get(str(benefit_id))
    if benefit is None or benefit["is_deleted"]:
        return None
    return benefit
