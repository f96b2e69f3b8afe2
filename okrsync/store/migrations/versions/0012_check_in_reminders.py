"""check-in reminders: one row per reminder and tick, the claim that sends it once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders_sent",
        sa.Column("reminder", sa.String(64), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_results", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("reminder", "tick", name="pk_reminders_sent"),
    )


def downgrade() -> None:
    op.drop_table("reminders_sent")
