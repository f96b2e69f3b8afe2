"""key result decimals: the digits after the point people read, as the key result configures
them (NULL: its unit's default, okrsync.domain.numbers), so the dashboard and ``status`` show what
the mirrors show

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(sa.Column("decimals", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.drop_column("decimals")
