"""run_batch: runs started together from the support console

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:40:00
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "run_batch",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", provisioning.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_batch")),
    )
    with op.batch_alter_table("provisioning_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_provisioning_run_batch_id"), ["batch_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_provisioning_run_batch_id_run_batch"), "run_batch", ["batch_id"], ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("provisioning_run", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_provisioning_run_batch_id_run_batch"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_provisioning_run_batch_id"))
        batch_op.drop_column("batch_id")
    op.drop_table("run_batch")
