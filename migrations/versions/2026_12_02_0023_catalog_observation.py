"""catalog_observation: the newest version of each managed object drift compared

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 21:15:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UTC = provisioning.db.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "catalog_observation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("polar_id", sa.String(length=64), nullable=False),
        sa.Column("version", UTC, nullable=True),
        sa.Column("observed_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_catalog_observation_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_observation")),
        sa.UniqueConstraint(
            "integration_id", "polar_id", name=op.f("uq_catalog_observation_integration_id_polar_id")
        ),
    )


def downgrade():
    op.drop_table("catalog_observation")
