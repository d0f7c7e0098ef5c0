"""run not_before: a run deferred until Polar's rate budget frees up

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 07:30:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("provisioning_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", provisioning.db.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("provisioning_run", schema=None) as batch_op:
        batch_op.drop_column("not_before")
