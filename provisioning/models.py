"""Every table of the domain, imported in one place for Alembic and tests."""

from provisioning.api_keys.models import ApiKey
from provisioning.audit.models import AuditEvent
from provisioning.billing.models import BillingCustomer, BillingGrant, BillingOrder, BillingSubscription
from provisioning.canary.models import KeyCanary
from provisioning.catalog.models import PlanCatalogRevision
from provisioning.connect.models import PolarConnectAttempt, PolarConnectionSwitch
from provisioning.drift.models import CatalogDrift, CatalogObservation
from provisioning.forwarding.models import EventForwardDelivery, EventForwardEndpoint
from provisioning.integrations.models import (
    IntegrationStatus,
    PolarIntegration,
    PolarMeterMapping,
    PolarProductMapping,
)
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus
from provisioning.usage.models import UsageEvent
from provisioning.webhooks.models import PolarWebhookEvent

__all__ = [
    "ApiKey",
    "AuditEvent",
    "BillingCustomer",
    "BillingGrant",
    "BillingOrder",
    "BillingSubscription",
    "CatalogDrift",
    "CatalogObservation",
    "EventForwardDelivery",
    "EventForwardEndpoint",
    "IntegrationStatus",
    "KeyCanary",
    "PlanCatalogRevision",
    "PolarConnectAttempt",
    "PolarConnectionSwitch",
    "PolarIntegration",
    "PolarMeterMapping",
    "PolarProductMapping",
    "PolarWebhookEvent",
    "ProvisioningRun",
    "ProvisioningStep",
    "RunStatus",
    "StepStatus",
    "UsageEvent",
]
