"""cycle close-out: cycles.closed_at/closed_by and the frozen cycle_closeouts record

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cycles") as batch:
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(length=20), nullable=True))
    op.create_table(
        "cycle_closeouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("cycle_id", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(20), nullable=False),
        sa.Column("subject_id", sa.String(100), nullable=False),
        sa.Column("objective_id", sa.String(100), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.String(80), nullable=False),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("start", sa.String(80), nullable=True),
        sa.Column("target", sa.String(80), nullable=True),
        sa.Column("value", sa.String(80), nullable=True),
        sa.Column("progress", sa.String(80), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("score", sa.String(80), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("cycle_id", "subject", "subject_id", name="uq_cycle_closeouts_subject"),
    )


def downgrade() -> None:
    op.drop_table("cycle_closeouts")
    with op.batch_alter_table("cycles") as batch:
        batch.drop_column("closed_by")
        batch.drop_column("closed_at")
