"""A dry run: what provisioning would create, change or archive. Reads Polar, never writes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog, load_catalog
from provisioning.config import Settings
from provisioning.integrations.service import access_token, get_integration, workspace_name
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import ProvisioningError
from provisioning.reconcile import benefits, meters, products, webhook
from provisioning.reconcile.context import Change, RunContext
from provisioning.reconcile.organization import organization_slug
from provisioning.webhooks.urls import webhook_url


def plan_changes(
    session: Session,
    settings: Settings,
    workspace_id: str,
    *,
    environment: str | None = None,
    catalog: Catalog | None = None,
) -> list[Change]:
    """The writes a provisioning run would make now, in run order."""
    catalog = catalog or load_catalog(settings.plans_file)
    integration = get_integration(session, workspace_id, environment)
    if integration is None or not integration.access_token:
        raise ProvisioningError("Polar is not connected for this workspace; connect Polar first")
    url = webhook_url(settings, integration)
    if not integration.polar_org_id:
        slug = organization_slug(workspace_name(session, workspace_id), workspace_id)
        changes = [Change("create", "organization", slug, f"create organization '{slug}' for the workspace")]
        changes += [meters.METERS.create_change(m.id, m.name) for m in catalog.meters]
        changes += [benefits.BENEFITS.create_change(b.id, b.description) for b in catalog.benefits]
        changes += [products.PRODUCTS.create_change(p.id, p.name) for p in catalog.plans]
        changes.append(webhook.ENDPOINT.create_change(url))
        return changes

    api = PolarApi(settings.polar(integration.environment).api_url, access_token(settings, integration))
    with ThreadPoolExecutor(4) as executor:
        ctx = RunContext(
            api=api,
            catalog=catalog,
            workspace_id=workspace_id,
            organization_id=integration.polar_org_id,
            webhook_url=url,
            executor=executor,
            dry_run=True,
        )
        lists = [
            executor.submit(f, ctx) for f in (meters.fetch, benefits.fetch, products.fetch, webhook.fetch)
        ]
        actual_meters, actual_benefits, actual_products, actual_hooks = (f.result() for f in lists)
    meter_ids, meter_changes = meters.plan(ctx, actual_meters)
    benefit_ids, benefit_changes = benefits.plan(ctx, actual_benefits, meter_ids)
    _, product_changes = products.plan(ctx, actual_products, meter_ids, benefit_ids)
    _, hook_changes = webhook.plan(ctx, actual_hooks)
    return meter_changes + benefit_changes + product_changes + hook_changes


def plan_diff(
    session: Session,
    settings: Settings,
    workspace_id: str,
    *,
    environment: str | None = None,
    catalog: Catalog | None = None,
) -> list[str]:
    """One line per change provisioning would make; an empty list means up to date."""
    changes = plan_changes(session, settings, workspace_id, environment=environment, catalog=catalog)
    return [c.summary for c in changes]
