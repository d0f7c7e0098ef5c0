"""billing state: webhook events keep their signed bytes and processing status; each connection's
customers, subscriptions, orders and benefit grants

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 10:30:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def _object_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("polar_id", sa.String(length=64), nullable=False),
        sa.Column("version", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f(f"fk_{name}_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("integration_id", "polar_id", name=op.f(f"uq_{name}_integration_id_polar_id")),
    )


def upgrade():
    with op.batch_alter_table("polar_webhook_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_body", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("signed_headers", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="pending")
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_polar_webhook_event_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    _object_table(
        "billing_customer",
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("deleted_at", UTC, nullable=True),
        sa.Column("meters", sa.JSON(), nullable=True),
        sa.Column("state_at", UTC, nullable=True),
    )
    op.create_index(
        "ix_billing_customer_integration_id_external_id",
        "billing_customer",
        ["integration_id", "external_id"],
    )
    _object_table(
        "billing_subscription",
        sa.Column("customer_polar_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("current_period_start", UTC, nullable=True),
        sa.Column("current_period_end", UTC, nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", UTC, nullable=True),
        sa.Column("ended_at", UTC, nullable=True),
    )
    op.create_index(
        "ix_billing_subscription_integration_id_customer",
        "billing_subscription",
        ["integration_id", "customer_polar_id"],
    )
    _object_table(
        "billing_order",
        sa.Column("customer_polar_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_polar_id", sa.String(length=64), nullable=True),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("billing_reason", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("total_amount", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_billing_order_integration_id_customer", "billing_order", ["integration_id", "customer_polar_id"]
    )
    _object_table(
        "billing_grant",
        sa.Column("customer_polar_id", sa.String(length=64), nullable=False),
        sa.Column("benefit_id", sa.String(length=64), nullable=False),
        sa.Column("benefit_key", sa.String(length=64), nullable=True),
        sa.Column("is_granted", sa.Boolean(), nullable=False),
        sa.Column("granted_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
    )
    op.create_index(
        "ix_billing_grant_integration_id_customer", "billing_grant", ["integration_id", "customer_polar_id"]
    )


def downgrade():
    for name in ("billing_grant", "billing_order", "billing_subscription", "billing_customer"):
        op.drop_table(name)
    with op.batch_alter_table("polar_webhook_event", schema=None) as batch_op:
        batch_op.drop_index("ix_polar_webhook_event_status_next_attempt_at")
        for column in ("note", "next_attempt_at", "attempts", "status", "signed_headers", "raw_body"):
            batch_op.drop_column(column)
