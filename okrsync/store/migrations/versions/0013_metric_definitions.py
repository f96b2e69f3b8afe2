"""metric and connection definitions as applied last, in tables of their own: the record that
``runs`` rows of trigger ``definitions`` held moves here (the newest one), and those rows go

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TRIGGER = "definitions"

runs = sa.table(
    "runs",
    sa.column("id", sa.String()),
    sa.column("trigger", sa.String()),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("finished_at", sa.DateTime(timezone=True)),
    sa.column("queries", sa.Integer()),
    sa.column("api_calls", sa.Integer()),
    sa.column("changed", sa.Integer()),
    sa.column("errors", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("detail", sa.JSON()),
)
metric_definitions = sa.table(
    "metric_definitions",
    sa.column("name", sa.String()),
    sa.column("connection", sa.String()),
    sa.column("query", sa.String()),
    sa.column("schedule", sa.String()),
    sa.column("applied_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "metric_definitions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("query", sa.String(), nullable=False),
        sa.Column("schedule", sa.String(200), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "connection_definitions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    newest = bind.execute(
        sa.select(runs.c.started_at, runs.c.detail)
        .where(runs.c.trigger == TRIGGER)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(1)
    ).first()
    if newest is not None:
        applied_at, detail = newest
        metrics: Any = (detail or {}).get("metrics")
        rows = [
            {
                "name": name,
                "connection": fields.get("connection") or "",
                "query": fields.get("query") or "",
                "schedule": fields.get("schedule"),
                "applied_at": applied_at,
            }
            for name, fields in (metrics.items() if isinstance(metrics, dict) else ())
            if isinstance(fields, dict)
        ]
        if rows:
            op.bulk_insert(metric_definitions, rows)
    bind.execute(sa.delete(runs).where(runs.c.trigger == TRIGGER))


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(metric_definitions).order_by(metric_definitions.c.name)).all()
    if rows:
        applied_at = max(row.applied_at for row in rows)
        metrics = {
            row.name: {"connection": row.connection, "query": row.query, "schedule": row.schedule}
            for row in rows
        }
        bind.execute(
            sa.insert(runs).values(
                id=f"definitions-{uuid.uuid4().hex[:16]}",
                trigger=TRIGGER,
                started_at=applied_at,
                finished_at=applied_at,
                queries=0,
                api_calls=0,
                changed=0,
                errors=0,
                status="ok",
                detail={"metrics": metrics},
            )
        )
    op.drop_table("connection_definitions")
    op.drop_table("metric_definitions")
