"""Rows that must exist, added by whichever replica gets there first.

Replicas on one PostgreSQL store race to create the same bookkeeping rows (a metric's claim row,
a connection's health row) on a fresh store. ``INSERT … ON CONFLICT DO NOTHING`` lets every one of
them try, in one statement per batch, without an ``IntegrityError`` aborting the transaction the
row was needed in; the caller then reads (and, on PostgreSQL, locks) the row that won.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

BATCH = 500


def _insert_ignoring(table: Table, dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"no insert-if-missing for the {dialect} dialect")


def add_missing(session: Session, rows: Sequence[SQLModel]) -> None:
    """Insert each of ``rows`` (all of one table) unless a row with its key exists already.

    The rows' Python defaults are written as declared on the model; rows already present are
    left exactly as they are.
    """
    if not rows:
        return
    table: Table = type(rows[0]).__table__  # type: ignore[attr-defined]
    statement = _insert_ignoring(table, session.get_bind().dialect.name)
    values = [row.model_dump() for row in rows]
    for start in range(0, len(values), BATCH):
        session.execute(statement, values[start : start + BATCH])
