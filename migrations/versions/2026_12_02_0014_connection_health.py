"""connection health: the monitor's last check on each connection

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 05:30:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("polar_integration", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("health_checked_at", provisioning.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("health_ok", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("health", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_polar_integration_health_checked_at"), ["health_checked_at"])


def downgrade():
    with op.batch_alter_table("polar_integration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_polar_integration_health_checked_at"))
        batch_op.drop_column("health")
        batch_op.drop_column("health_ok")
        batch_op.drop_column("health_checked_at")
