"""polar_connect_attempt.completed_at: when an attempt stored its connection

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:00:00

Several connects may be in flight in one browser (tabs); an older attempt of the same workspace and
environment that comes back after a newer one completed is refused: the newer connect wins.
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("polar_connect_attempt") as batch_op:
        batch_op.add_column(
            sa.Column("completed_at", provisioning.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("polar_connect_attempt") as batch_op:
        batch_op.drop_column("completed_at")
