"""key_canary: a known value encrypted with POLAR_TOKEN_ENCRYPTION_KEY, checked at start-up

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00

Every process (web, worker, CLI) decrypts it at start-up and stops, naming the setting, when its
keys are not the ones this database's secrets were encrypted with. The first start writes it.
"""

from alembic import op
import sqlalchemy as sa
import provisioning.db


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "key_canary",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", provisioning.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", provisioning.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_key_canary")),
    )


def downgrade():
    op.drop_table("key_canary")
