"""The billing state of a connection, one row per Polar object, as its events said last.

Every row keeps ``version``: the object's ``modified_at`` (or ``created_at`` when Polar never
modified it) as Polar last sent it. An event whose object is older than the row is stale and
changes nothing, so events delivered out of order or twice never move the state backwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow
from provisioning.ids import new_id

# Polar's active statuses (past_due is not one: it drops out of a customer's active subscriptions).
ACTIVE_SUBSCRIPTION_STATUSES = ("active", "trialing")


class _PolarObject:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE")
    )
    polar_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class BillingCustomer(_PolarObject, Base):
    """A customer of the connection's organization. ``meters`` and ``state_at`` come from the
    latest ``customer.state_changed`` (Polar's whole state, sent debounced): the customer's state is
    known here once one arrived."""

    __tablename__ = "billing_customer"
    __table_args__ = (
        UniqueConstraint("integration_id", "polar_id"),
        Index("ix_billing_customer_integration_id_external_id", "integration_id", "external_id"),
    )

    external_id: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(256))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meters: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    state_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BillingSubscription(_PolarObject, Base):
    __tablename__ = "billing_subscription"
    __table_args__ = (
        UniqueConstraint("integration_id", "polar_id"),
        Index("ix_billing_subscription_integration_id_customer", "integration_id", "customer_polar_id"),
    )

    customer_polar_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    plan_id: Mapped[str | None] = mapped_column(String(64))  # by the mapping; None: not a managed product
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(8))
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BillingOrder(_PolarObject, Base):
    __tablename__ = "billing_order"
    __table_args__ = (
        UniqueConstraint("integration_id", "polar_id"),
        Index("ix_billing_order_integration_id_customer", "integration_id", "customer_polar_id"),
    )

    customer_polar_id: Mapped[str] = mapped_column(String(64))
    subscription_polar_id: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    plan_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    billing_reason: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    total_amount: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0)


class BillingGrant(_PolarObject, Base):
    """A benefit grant; Polar reuses one grant row per customer, benefit and scope (a re-grant
    after a revoke is the same id)."""

    __tablename__ = "billing_grant"
    __table_args__ = (
        UniqueConstraint("integration_id", "polar_id"),
        Index("ix_billing_grant_integration_id_customer", "integration_id", "customer_polar_id"),
    )

    customer_polar_id: Mapped[str] = mapped_column(String(64))
    benefit_id: Mapped[str] = mapped_column(String(64))
    benefit_key: Mapped[str | None] = mapped_column(String(64))  # the catalog's benefit id
    is_granted: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
