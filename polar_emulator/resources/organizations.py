"""Organizations (to be completed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from polar_emulator.clock import isoformat
from polar_emulator.tokens import new_id

router = APIRouter()


def new_organization(store, *, name: str, slug: str) -> dict[str, Any]:
    now = isoformat(store.clock.now())
    return {"id": new_id(), "created_at": now, "modified_at": None, "name": name, "slug": slug}
