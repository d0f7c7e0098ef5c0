"""catalog_drift: a managed product or benefit changed at Polar away from the catalog

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 10:47:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "catalog_drift",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("polar_id", sa.String(length=64), nullable=False),
        sa.Column("catalog_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("catalog_value", sa.Text(), nullable=True),
        sa.Column("polar_value", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detected_at", UTC, nullable=False),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_catalog_drift_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_drift")),
        sa.UniqueConstraint(
            "integration_id", "polar_id", "field", name=op.f("uq_catalog_drift_integration_id_polar_id_field")
        ),
    )


def downgrade():
    op.drop_table("catalog_drift")
