"""read side indexes: pages of objectives (by cycle), key results, runs and deliveries by key

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_objectives_position", "objectives", ["position", "id"]),
    ("ix_objectives_cycle_position", "objectives", ["cycle_id", "position", "id"]),
    ("ix_key_results_objective_position", "key_results", ["objective_id", "position", "id"]),
    ("ix_runs_started", "runs", ["started_at", "id"]),
    ("ix_deliveries_status_id", "deliveries", ["status", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
