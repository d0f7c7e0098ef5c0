"""A ready connection of its own per test (no Polar needed: forwarding only reads its row) and the
tenant's app on a real port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from provisioning.config import PolarEnvironment
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.repository import add
from tests.factories import Owner
from tests.provisioning.forwarding.support import TenantApp, tenant_app


@pytest.fixture
def integration(session: Session, owner: Owner) -> PolarIntegration:
    row = add(session, owner.workspace_id, PolarEnvironment.SANDBOX)
    row.status = IntegrationStatus.READY
    session.commit()
    return row


@pytest.fixture
def receiver() -> Iterator[TenantApp]:
    with tenant_app() as app:
        yield app
