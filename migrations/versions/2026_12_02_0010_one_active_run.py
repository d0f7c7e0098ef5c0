"""at most one queued or running provisioning run per integration

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:00:00

A unique partial index on provisioning_run(integration_id) WHERE status IN ('queued', 'running')
(PostgreSQL and SQLite both have partial indexes): two triggers at once can never both start a run.
Integrations that already have several active runs keep one (a running one, else the oldest); the
others are cancelled first, with their unfinished steps skipped.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEX = "uq_provisioning_run_one_active_per_integration"
CONDITION = "status IN ('queued', 'running')"
DUPLICATE = "Cancelled: another run of this connection was already under way"

runs = sa.table(
    "provisioning_run",
    sa.column("id", sa.String),
    sa.column("integration_id", sa.String),
    sa.column("status", sa.String),
    sa.column("error", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("finished_at", sa.DateTime(timezone=True)),
)
steps = sa.table("provisioning_step", sa.column("run_id", sa.String), sa.column("status", sa.String))


def _cancel_duplicates() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(runs.c.id, runs.c.integration_id, runs.c.status)
        .where(runs.c.status.in_(("queued", "running")))
        .order_by(runs.c.integration_id, runs.c.created_at, runs.c.id)
    ).all()
    kept: dict[str, tuple[str, str]] = {}
    extra: list[str] = []
    for run_id, integration_id, status in rows:
        current = kept.get(integration_id)
        if current is None:
            kept[integration_id] = (run_id, status)
        elif status == "running" and current[1] != "running":
            extra.append(current[0])
            kept[integration_id] = (run_id, status)
        else:
            extra.append(run_id)
    if not extra:
        return
    bind.execute(
        runs.update()
        .where(runs.c.id.in_(extra))
        .values(status="cancelled", error=DUPLICATE, finished_at=datetime.now(UTC))
    )
    bind.execute(
        steps.update()
        .where(steps.c.run_id.in_(extra), steps.c.status.in_(("pending", "running")))
        .values(status="skipped")
    )


def upgrade():
    _cancel_duplicates()
    op.create_index(
        INDEX,
        "provisioning_run",
        ["integration_id"],
        unique=True,
        postgresql_where=sa.text(CONDITION),
        sqlite_where=sa.text(CONDITION),
    )


def downgrade():
    op.drop_index(INDEX, table_name="provisioning_run")
