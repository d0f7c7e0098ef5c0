"""meter_mappings: which Polar meter is each catalog meter, per connection

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 21:20:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "polar_meter_mapping",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("polar_meter_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_polar_meter_mapping_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polar_meter_mapping")),
        sa.UniqueConstraint(
            "integration_id", "meter_id", name=op.f("uq_polar_meter_mapping_integration_id_meter_id")
        ),
    )
    op.create_index(
        op.f("ix_polar_meter_mapping_integration_id"), "polar_meter_mapping", ["integration_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_polar_meter_mapping_integration_id"), table_name="polar_meter_mapping")
    op.drop_table("polar_meter_mapping")
