"""Resolve the organization to provision: the chosen one, or a new one named after the workspace."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provisioning.polar.client import AmbiguousWriteError, PolarApi

SCOPE_READ, SCOPE_WRITE = "organizations:read", "organizations:write"


@dataclass
class OrganizationResult:
    id: str
    name: str
    slug: str
    created: bool


def organization_slug(workspace_name: str, workspace_id: str) -> str:
    """Deterministic, so a retried create after a lost response finds (or collides with) the first."""
    base = re.sub(r"[^a-z0-9]+", "-", workspace_name.lower()).strip("-")[:40] or "workspace"
    return f"{base}-{workspace_id.replace('-', '')[:8]}"


def create_for_workspace(api: PolarApi, workspace_name: str, workspace_id: str) -> OrganizationResult:
    slug = organization_slug(workspace_name, workspace_id)
    existing = _by_slug(api, slug)
    if existing is not None:
        return OrganizationResult(existing.id, existing.name, existing.slug, created=False)
    name = workspace_name if len(workspace_name) >= 3 else f"{workspace_name} billing"
    try:
        org = api.create(
            api.sdk.organizations.create,
            action="create a Polar organization",
            scope=SCOPE_WRITE,
            name=name,
            slug=slug,
        )
    except AmbiguousWriteError:
        found = _by_slug(api, slug)
        if found is None:
            raise
        org = found
    return OrganizationResult(org.id, org.name, org.slug, created=True)


def _by_slug(api: PolarApi, slug: str) -> Any | None:
    items = api.read(
        api.sdk.organizations.list, action="look up the organization", scope=SCOPE_READ, slug=slug, limit=1
    ).items
    return items[0] if items else None
