"""check-ins and scores: measurements carry a check-in's confidence and author; key results their
current confidence and score, their stretch, and what the manual-value precedence rule needs (the
value the source last reported, and while a manual value stands, since when and what the source
had reported then)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KEY_RESULT_COLUMNS = (
    "manual_since",
    "held_source_value",
    "source_value",
    "stretch",
    "score",
    "confidence",
)


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("confidence", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("author", sa.String(length=200), nullable=True))
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(sa.Column("confidence", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("score", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("stretch", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("source_value", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("held_source_value", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("manual_since", sa.DateTime(timezone=True), nullable=True))
    # Until now every value of a key result came from its source or replaced it for good.
    op.execute(sa.text("UPDATE key_results SET source_value = value"))


def downgrade() -> None:
    with op.batch_alter_table("key_results") as batch:
        for column in _KEY_RESULT_COLUMNS:
            batch.drop_column(column)
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("author")
        batch.drop_column("confidence")
