"""usage_event: tenants' usage events, stored durably before they are ingested to Polar

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 10:45:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "usage_event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("api_key_id", sa.String(length=36), nullable=True),
        sa.Column("external_id", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("external_customer_id", sa.String(length=256), nullable=False),
        sa.Column("timestamp", UTC, nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("ingested_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_usage_event_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_key.id"], name=op.f("fk_usage_event_api_key_id_api_key"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_event")),
        sa.UniqueConstraint("integration_id", "external_id", name=op.f("uq_usage_event_integration_id_external_id")),
    )
    op.create_index("ix_usage_event_status_next_attempt_at", "usage_event", ["status", "next_attempt_at"])
    op.create_index("ix_usage_event_integration_id_status", "usage_event", ["integration_id", "status"])


def downgrade():
    op.drop_table("usage_event")
