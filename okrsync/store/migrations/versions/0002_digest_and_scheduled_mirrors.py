"""digest and scheduled mirrors: mirrors and deliveries may belong to an objective; mirrors
remember their last scheduled tick

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mirrors") as batch:
        batch.add_column(sa.Column("last_scheduled_at", sa.DateTime(timezone=True), nullable=True))
    for table in ("mirrors", "deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("objective_id", sa.String(length=100), nullable=True))
            batch.alter_column("key_result_id", existing_type=sa.String(length=100), nullable=True)


def downgrade() -> None:
    for table in ("mirrors", "deliveries"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE key_result_id IS NULL"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("key_result_id", existing_type=sa.String(length=100), nullable=False)
            batch.drop_column("objective_id")
    with op.batch_alter_table("mirrors") as batch:
        batch.drop_column("last_scheduled_at")
