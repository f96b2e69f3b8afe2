"""key result decimals: the digits after the point people read, as the key result configures
them (NULL: its unit's default, okrsync.domain.numbers), so the dashboard and ``status`` show what
the mirrors show

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"  # 0013 is not on main yet; the integrator sets "0013" when it lands
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(sa.Column("decimals", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        batch.drop_column("decimals")
