"""event forwarding: a connection's endpoint in the tenant's app, and the log of deliveries to it

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 10:46:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "event_forward_endpoint",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", UTC, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_event_forward_endpoint_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_forward_endpoint")),
        sa.UniqueConstraint("integration_id", name=op.f("uq_event_forward_endpoint_integration_id")),
    )
    op.create_table(
        "event_forward_delivery",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("webhook_event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("delivered_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_event_forward_delivery_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_event_id"],
            ["polar_webhook_event.id"],
            name=op.f("fk_event_forward_delivery_webhook_event_id_polar_webhook_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_forward_delivery")),
        sa.UniqueConstraint(
            "integration_id",
            "webhook_event_id",
            name=op.f("uq_event_forward_delivery_integration_id_webhook_event_id"),
        ),
    )
    op.create_index(
        "ix_event_forward_delivery_status_next_attempt_at",
        "event_forward_delivery",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_event_forward_delivery_integration_id_created_at",
        "event_forward_delivery",
        ["integration_id", "created_at"],
    )


def downgrade():
    op.drop_table("event_forward_delivery")
    op.drop_table("event_forward_endpoint")
