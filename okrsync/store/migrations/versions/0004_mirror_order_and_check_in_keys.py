"""mirror order and check-in keys: deliveries carry a per-mirror sequence, mirrors a lease (one
push in flight per mirror) and the sequence they show; measurements remember the request that
made a check-in, so a repeat records nothing new

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
    # rows queued before this revision were ordered by id; so are their sequences
    op.execute(sa.text("UPDATE deliveries SET seq = id"))
    op.create_index("ix_deliveries_mirror_seq", "deliveries", ["mirror_key", "seq"])
    with op.batch_alter_table("mirrors") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("delivered_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        sa.text(
            "UPDATE mirrors SET last_seq = COALESCE("
            "(SELECT MAX(d.id) FROM deliveries d WHERE d.mirror_key = mirrors.key), 0)"
        )
    )
    op.execute(
        sa.text(
            "UPDATE mirrors SET delivered_seq = COALESCE((SELECT MAX(d.id) FROM deliveries d "
            "WHERE d.mirror_key = mirrors.key AND d.status = 'done'), 0)"
        )
    )
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("request_key", sa.String(length=100), nullable=True))
        batch.create_unique_constraint("uq_measurements_request_key", ["request_key"])


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_constraint("uq_measurements_request_key", type_="unique")
        batch.drop_column("request_key")
    with op.batch_alter_table("mirrors") as batch:
        for column in ("lease_until", "lease_owner", "delivered_seq", "last_seq"):
            batch.drop_column(column)
    op.drop_index("ix_deliveries_mirror_seq", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("seq")
