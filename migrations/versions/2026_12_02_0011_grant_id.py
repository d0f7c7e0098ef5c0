"""polar_integration.grant_id and token_refresh_unanswered_at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 08:00:00

grant_id: a new value at every connect, kept by token refreshes, so a run tells its own grant
refreshed (go on) from a reconnect (stop). token_refresh_unanswered_at: a refresh was sent and its
answer lost (Polar may have rotated the pair); cleared when a pair is stored.
"""

import sqlalchemy as sa
from alembic import op

import provisioning.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("polar_integration") as batch:
        batch.add_column(sa.Column("grant_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column("token_refresh_unanswered_at", provisioning.db.UTCDateTime(), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("polar_integration") as batch:
        batch.drop_column("token_refresh_unanswered_at")
        batch.drop_column("grant_id")
