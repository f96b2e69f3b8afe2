"""shared call budgets: the pace and holds of each connection's buckets, one for all replicas

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_budgets",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=True),
        sa.Column("refilled_at", sa.Float(), nullable=True),
        sa.Column("sends", sa.String(), nullable=True),
        sa.Column("hold_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "bucket"),
    )


def downgrade() -> None:
    op.drop_table("call_budgets")
