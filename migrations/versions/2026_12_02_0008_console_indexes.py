"""indexes for the support console at fleet scale

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00

Connections by latest activity (all, or by status), a workspace's latest runs and webhook events,
workspaces by creation, and trigram indexes for the console's substring search (PostgreSQL's
pg_trgm, a trusted extension; elsewhere they are plain indexes).
"""

from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRIGRAM = (
    ("ix_workspace_name_trgm", "workspace", "name"),
    ("ix_users_email_trgm", "users", "email"),
    ("ix_polar_integration_polar_org_id_trgm", "polar_integration", "polar_org_id"),
    ("ix_polar_integration_polar_org_slug_trgm", "polar_integration", "polar_org_slug"),
    ("ix_polar_integration_polar_org_name_trgm", "polar_integration", "polar_org_name"),
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_polar_integration_updated_at_id", "polar_integration", ["updated_at", "id"])
    op.create_index(
        "ix_polar_integration_status_updated_at_id", "polar_integration", ["status", "updated_at", "id"]
    )
    op.create_index(
        "ix_polar_webhook_event_integration_id_received_at", "polar_webhook_event", ["integration_id", "received_at"]
    )
    op.create_index(
        "ix_provisioning_run_integration_id_created_at", "provisioning_run", ["integration_id", "created_at"]
    )
    op.create_index("ix_workspace_created_at_id", "workspace", ["created_at", "id"])
    for name, table, column in TRIGRAM:
        op.create_index(name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    for name, table, _ in TRIGRAM:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_workspace_created_at_id", table_name="workspace")
    op.drop_index("ix_provisioning_run_integration_id_created_at", table_name="provisioning_run")
    op.drop_index("ix_polar_webhook_event_integration_id_received_at", table_name="polar_webhook_event")
    op.drop_index("ix_polar_integration_status_updated_at_id", table_name="polar_integration")
    op.drop_index("ix_polar_integration_updated_at_id", table_name="polar_integration")
