"""What the tenant API answers for a connection: the catalog revision it was provisioned with (not
the running one, during a rollout), each plan with its product id or none, the deploy variables,
and why a connection that is not ready cannot answer."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from provisioning.catalog import load_catalog, parse_catalog
from provisioning.catalog import repository as catalogs
from provisioning.config import PolarEnvironment, Settings
from provisioning.integrations.models import IntegrationStatus, PolarIntegration, PolarProductMapping
from provisioning.tenant import service
from provisioning.tenant.service import NotReady
from tests.factories import Owner

OLDER = """
[[plans]]
id = "starter"
name = "Starter"
interval = "month"
price = { type = "fixed", amount = 500, currency = "eur" }

[[plans]]
id = "one-off"
name = "One-off"
interval = "none"
price = { type = "fixed", amount = 1000, currency = "eur" }
"""


@pytest.fixture
def connection(session: Session, owner: Owner) -> PolarIntegration:
    integration = PolarIntegration(
        workspace_id=owner.workspace_id,
        environment=PolarEnvironment.SANDBOX,
        status=IntegrationStatus.READY,
        polar_org_id="org-1",
    )
    session.add(integration)
    session.commit()
    return integration


def test_the_connection_provisioned_with_an_older_revision_shows_that_revision(
    session: Session, settings: Settings, connection: PolarIntegration
) -> None:
    running = load_catalog(settings.plans_file)
    older = parse_catalog(OLDER)
    catalogs.remember(session, older)
    connection.catalog_revision = older.revision
    session.add(
        PolarProductMapping(integration_id=connection.id, plan_id="starter", polar_product_id="prod-s")
    )
    session.commit()

    answer = service.plans(session, connection, running)
    assert answer["catalog_revision"] == older.revision
    assert [(p["id"], p["polar_product_id"], p["interval"]) for p in answer["plans"]] == [
        ("starter", "prod-s", "month"),
        ("one-off", None, None),  # not provisioned yet: null
    ]
    assert answer["plans"][0]["prices"] == [{"type": "fixed", "currency": "eur", "amount": 500}]

    env = service.deploy_env(session, connection, running)
    assert env.variables == {
        "POLAR_SERVER": "sandbox",
        "POLAR_ORGANIZATION_ID": "org-1",
        "POLAR_PRODUCT_STARTER": "prod-s",
        "POLAR_PRODUCT_ONE_OFF": None,
    }
    assert env.dotenv == (
        "POLAR_SERVER=sandbox\nPOLAR_ORGANIZATION_ID=org-1\nPOLAR_PRODUCT_STARTER=prod-s\nPOLAR_PRODUCT_ONE_OFF=\n"
    )

    # A revision this platform does not hold: the running catalog.
    connection.catalog_revision = "0123456789ab"
    assert service.plans(session, connection, running)["catalog_revision"] == running.revision


def test_a_value_that_is_not_plain_is_quoted_in_the_block(
    session: Session, settings: Settings, connection: PolarIntegration
) -> None:
    connection.polar_org_id = 'an "odd" id\nwith a line'
    env = service.deploy_env(session, connection, load_catalog(settings.plans_file))
    assert 'POLAR_ORGANIZATION_ID="an \\"odd\\" id\\nwith a line"\n' in env.dotenv
    assert env.dotenv.count("\n") == len(env.variables)


@pytest.mark.parametrize(
    ("status", "provisioned", "message"),
    [
        (IntegrationStatus.NOT_CONNECTED, False, "This workspace has no test mode Polar connection."),
        (
            IntegrationStatus.CONNECTING,
            False,
            "Polar is being connected in test mode: try again in a minute.",
        ),
        (IntegrationStatus.PROVISIONING, False, "Billing is being set up in Polar for test mode"),
        (IntegrationStatus.PROVISIONING, True, "Billing is being updated in Polar for test mode"),
        (IntegrationStatus.AWAITING_ORGANIZATION, False, "has to choose a Polar organization"),
        (IntegrationStatus.FAILED, False, "Setting up billing in test mode failed."),
        (IntegrationStatus.NEEDS_RECONNECT, False, "Polar no longer accepts the test mode connection."),
    ],
)
def test_a_connection_not_ready_says_what_to_do(
    session: Session,
    settings: Settings,
    owner: Owner,
    connection: PolarIntegration,
    status: IntegrationStatus,
    provisioned: bool,
    message: str,
) -> None:
    connection.status = status
    if provisioned:
        from provisioning.db import utcnow

        connection.provisioned_at = utcnow()
    session.commit()
    with pytest.raises(NotReady, match=message):
        service.ready_connection(session, settings, owner.workspace_id, PolarEnvironment.SANDBOX)


def test_a_mode_without_a_connection_or_not_served(
    session: Session, settings: Settings, owner: Owner
) -> None:
    with pytest.raises(NotReady, match="no live mode Polar connection"):
        service.ready_connection(session, settings, owner.workspace_id, PolarEnvironment.PRODUCTION)
    session.add(
        PolarIntegration(
            workspace_id=owner.workspace_id,
            environment=PolarEnvironment.PRODUCTION,
            status=IntegrationStatus.READY,
        )
    )
    session.commit()
    with pytest.raises(NotReady, match="no longer serves Polar's production environment"):
        service.ready_connection(session, settings, owner.workspace_id, PolarEnvironment.PRODUCTION)
