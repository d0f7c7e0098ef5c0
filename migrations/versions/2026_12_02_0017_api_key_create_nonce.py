"""api_key create_nonce: a create form sent twice (a reload, a double click) makes one key

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 08:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("create_nonce", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            "uq_api_key_workspace_id_create_nonce", ["workspace_id", "create_nonce"]
        )


def downgrade():
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("uq_api_key_workspace_id_create_nonce", type_="unique")
        batch_op.drop_column("create_nonce")
