"""work items: the tracker issues, PRs and epics behind each key result, and where their reads stand

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("work_key", sa.String(200), nullable=False),
        sa.Column("key_result_id", sa.String(100), nullable=True),
        sa.Column("objective_id", sa.String(100), nullable=True),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("item_key", sa.String(200), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("assignee", sa.String(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("backlink_ref", sa.String(), nullable=True),
        sa.Column("backlink_shown", sa.String(100), nullable=True),
        sa.Column("backlink_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("work_key", "item_key", name="uq_work_items_entry_item"),
    )
    op.create_index("ix_work_items_key_result", "work_items", ["key_result_id", "unlinked_at"])
    op.create_index("ix_work_items_objective", "work_items", ["objective_id", "unlinked_at"])
    op.create_table(
        "work_reads",
        sa.Column("work_key", sa.String(200), primary_key=True),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("read_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("work_reads")
    op.drop_index("ix_work_items_objective", table_name="work_items")
    op.drop_index("ix_work_items_key_result", table_name="work_items")
    op.drop_table("work_items")
