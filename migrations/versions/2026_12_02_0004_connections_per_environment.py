"""connections keyed by workspace and environment; plan catalog revisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:10:00

A workspace may now hold one connection per Polar environment (sandbox: test mode, production:
live mode). Existing rows keep the environment they were written with. Every catalog revision a
run provisions is kept, so going live can provision the sandbox's revision.
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("polar_integration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_polar_integration_workspace_id"))
        batch_op.create_index(batch_op.f("ix_polar_integration_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_polar_integration_workspace_id_environment"), ["workspace_id", "environment"]
        )
    op.create_table(
        "plan_catalog_revision",
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("created_at", provisioning.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_plan_catalog_revision")),
    )


def downgrade():
    op.drop_table("plan_catalog_revision")
    # Only one connection per workspace fits the old key: keep each workspace's oldest.
    op.execute(
        "DELETE FROM polar_integration WHERE id NOT IN ("
        " SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY workspace_id ORDER BY created_at, id) AS n"
        " FROM polar_integration) ranked WHERE n = 1)"
    )
    with op.batch_alter_table("polar_integration", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_polar_integration_workspace_id_environment"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_polar_integration_workspace_id"))
        batch_op.create_index(batch_op.f("ix_polar_integration_workspace_id"), ["workspace_id"], unique=True)
