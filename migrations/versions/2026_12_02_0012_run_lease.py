"""provisioning_run.lease_expires_at: a running run's lease

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 09:00:00

While a run is running, its worker renews the lease every third of RUN_LEASE_SECONDS; once it
lapses (the worker or its work-horse was killed), the run is requeued and resumed.
"""

import sqlalchemy as sa
from alembic import op

import provisioning.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("provisioning_run") as batch:
        batch.add_column(sa.Column("lease_expires_at", provisioning.db.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("provisioning_run") as batch:
        batch.drop_column("lease_expires_at")
