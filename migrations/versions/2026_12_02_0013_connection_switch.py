"""polar_connection_switch; polar_connect_attempt.account_email and pending_grant

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 09:00:00

A reconnect to another Polar account or organization waits for the owner's confirmation (the new
grant, encrypted, on its attempt); a confirmed switch keeps the previous organization and its
products for the page, the retired webhook URL segment (late deliveries are acknowledged and
ignored) and, while deleting the old endpoint is pending, the old grant to retry with.
"""

import sqlalchemy as sa
from alembic import op

import provisioning.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("polar_connect_attempt") as batch:
        batch.add_column(sa.Column("account_email", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("pending_grant", sa.Text(), nullable=True))
    op.create_table(
        "polar_connection_switch",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("from_account_id", sa.String(length=64), nullable=True),
        sa.Column("from_account_email", sa.String(length=320), nullable=True),
        sa.Column("from_organization", sa.JSON(), nullable=True),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("webhook_path_token", sa.String(length=64), nullable=True),
        sa.Column("webhook_endpoint_id", sa.String(length=64), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("cleanup", sa.String(length=16), nullable=False),
        sa.Column("cleanup_attempts", sa.Integer(), nullable=False),
        sa.Column("cleanup_error", sa.Text(), nullable=True),
        sa.Column("switched_at", provisioning.db.UTCDateTime(), nullable=False),
        sa.Column("cleaned_at", provisioning.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["polar_integration.id"],
            name=op.f("fk_polar_connection_switch_integration_id_polar_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polar_connection_switch")),
        sa.UniqueConstraint("webhook_path_token", name=op.f("uq_polar_connection_switch_webhook_path_token")),
    )
    with op.batch_alter_table("polar_connection_switch") as batch:
        batch.create_index(batch.f("ix_polar_connection_switch_integration_id"), ["integration_id"], unique=False)


def downgrade():
    op.drop_table("polar_connection_switch")
    with op.batch_alter_table("polar_connect_attempt") as batch:
        batch.drop_column("pending_grant")
        batch.drop_column("account_email")
