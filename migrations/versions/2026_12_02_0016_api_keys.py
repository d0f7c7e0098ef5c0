"""api_key: a workspace's keys for the tenant API (a SHA-256 hash each, never the key)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op

import provisioning.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("lookup_id", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by_user_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", provisioning.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", provisioning.db.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", provisioning.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", provisioning.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_by_user_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_api_key_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_api_key_lookup_id")),
    )
    with op.batch_alter_table("api_key") as batch:
        batch.create_index("ix_api_key_workspace_id_created_at", ["workspace_id", "created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("api_key") as batch:
        batch.drop_index("ix_api_key_workspace_id_created_at")
    op.drop_table("api_key")
