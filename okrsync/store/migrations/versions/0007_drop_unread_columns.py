"""drop unread columns: metric_states.next_run_at and objectives.parent_id

Nothing reads either: a metric's next run is computed from its schedule and last_run_at, and an
objective's parent is checked in the config (no loops, names an objective) but never stored for
a query.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metric_states") as batch:
        batch.drop_column("next_run_at")
    with op.batch_alter_table("objectives") as batch:
        batch.drop_column("parent_id")


def downgrade() -> None:
    with op.batch_alter_table("objectives") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=100), nullable=True))
    with op.batch_alter_table("metric_states") as batch:
        batch.add_column(sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True))
