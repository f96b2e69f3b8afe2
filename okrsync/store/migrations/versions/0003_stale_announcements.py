"""stale announcements: key results remember which staleness their mirrors were told of

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(
            sa.Column("stale_announced_for", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.drop_column("stale_announced_for")
