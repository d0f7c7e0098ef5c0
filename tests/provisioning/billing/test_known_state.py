"""The tenant API's read of a known customer state: active subscriptions, granted benefits and the
connection's meter mappings in one ``UNION ALL``, on PostgreSQL and on the local SQLite default alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from provisioning.billing.models import BillingCustomer, BillingGrant, BillingSubscription
from provisioning.billing.repository import known_state
from provisioning.db import Database
from provisioning.integrations.models import IntegrationStatus, PolarIntegration, PolarMeterMapping
from tests.factories import make_owner

PERIOD_END = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)


def _connection(session: Session, polar_meter_id: str = "m1") -> str:
    owner = make_owner(session, "State", email=f"state-{uuid.uuid4().hex[:6]}@example.test")
    integration = PolarIntegration(workspace_id=owner.workspace_id, status=IntegrationStatus.READY)
    session.add(integration)
    session.flush()
    session.add(
        PolarMeterMapping(integration_id=integration.id, meter_id="api-calls", polar_meter_id=polar_meter_id)
    )
    session.flush()
    return integration.id


def _customer(session: Session, integration_id: str, *, known: bool) -> None:
    now = datetime.now(UTC)
    session.add_all(
        [
            BillingCustomer(
                integration_id=integration_id,
                polar_id="cus_1",
                external_id="user-1",
                state_at=now if known else None,
                meters=[{"meter_id": "m1", "balance": 7, "consumed_units": 3, "credited_units": 10}],
            ),
            # A deleted customer whose external id was taken again: never the one read.
            BillingCustomer(
                integration_id=integration_id,
                polar_id="cus_0",
                external_id="user-1",
                state_at=now - timedelta(days=1),
                deleted_at=now - timedelta(hours=1),
            ),
        ]
    )
    for polar_id, status, cancel in [
        ("sub_b", "active", True),
        ("sub_a", "trialing", False),
        ("sub_c", "canceled", False),
    ]:
        session.add(
            BillingSubscription(
                integration_id=integration_id,
                polar_id=polar_id,
                customer_polar_id="cus_1",
                plan_id="pro-monthly",
                status=status,
                current_period_end=PERIOD_END,
                cancel_at_period_end=cancel,
            )
        )
    for polar_id, granted in [("grant_2", True), ("grant_1", True), ("grant_3", False)]:
        session.add(
            BillingGrant(
                integration_id=integration_id,
                polar_id=polar_id,
                customer_polar_id="cus_1",
                benefit_id=f"ben_{polar_id}",
                benefit_key="api-access",
                is_granted=granted,
            )
        )
    session.flush()


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest) -> Database:
    name = "database" if request.param == "postgresql" else "sqlite_database"
    return request.getfixturevalue(name)


def test_a_known_state_lists_active_subscriptions_and_granted_benefits_in_order(db: Database) -> None:
    with db.transaction() as session:
        integration_id = _connection(session)
        _customer(session, integration_id, known=True)
        _connection(session, polar_meter_id="m2")  # another connection's meter: never named
    with db.transaction() as session:
        state = known_state(session, integration_id, "user-1")

    assert state is not None
    assert state.subscriptions == [
        ("sub_a", "pro-monthly", "trialing", PERIOD_END, False),
        ("sub_b", "pro-monthly", "active", PERIOD_END, True),
    ]
    assert state.grants == [
        ("grant_1", "ben_grant_1", "api-access"),
        ("grant_2", "ben_grant_2", "api-access"),
    ]
    assert state.meters == [{"meter_id": "m1", "balance": 7, "consumed_units": 3, "credited_units": 10}]
    assert state.meter_ids == {"m1": "api-calls"}


def test_a_customer_without_a_state_yet_or_unknown_has_none(db: Database) -> None:
    with db.transaction() as session:
        integration_id = _connection(session)
        _customer(session, integration_id, known=False)
    with db.transaction() as session:
        assert known_state(session, integration_id, "user-1") is None
        assert known_state(session, integration_id, "nobody") is None
