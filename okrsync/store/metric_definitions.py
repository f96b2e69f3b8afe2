"""The metric definitions last applied to the store, so ``plan`` can show a query's edit.

One ``metric_definitions`` row per metric (connection, query text, schedule). ``apply`` writes
only the rows of metrics added or changed and deletes those of metrics removed, so a daemon's
passes write nothing and one edited query is one row, however many metrics there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlmodel import Session, col, select

from okrsync.store.tables import ConnectionDefinitionRow, MetricDefinitionRow

MetricDefinitions = dict[str, dict[str, str | None]]

CHUNK = 500


Row = TypeVar("Row", MetricDefinitionRow, ConnectionDefinitionRow)


def recorded_metrics(session: Session) -> MetricDefinitions:
    """The metric definitions applied last, by name; empty when none were ever applied."""
    table = MetricDefinitionRow
    columns = select(table.name, table.connection, table.query, table.schedule)  # no ORM objects
    return {
        name: {"connection": connection, "query": query, "schedule": schedule}
        for name, connection, query, schedule in session.exec(columns.order_by(col(table.name)))
    }


def record_metrics(
    session: Session,
    wanted: MetricDefinitions,
    added: Sequence[str],
    changed: Sequence[str],
    removed: Sequence[str],
    now: datetime,
) -> None:
    """Insert the added metrics' definitions, update the changed ones, delete the removed ones:
    a statement per row changed or removed and one read per 500 of them."""
    if added:  # one executemany, not an ORM object per row (a first apply has thousands)
        session.execute(
            insert(MetricDefinitionRow),
            [_values(name, wanted[name], now) for name in added],
        )
    rows = rows_named(session, MetricDefinitionRow, [*changed, *removed])
    for name in changed:
        row = rows[name]
        for column, value in _values(name, wanted[name], now).items():
            setattr(row, column, value)
        session.add(row)
    for name in removed:
        session.delete(rows[name])


def _values(name: str, fields: dict[str, str | None], now: datetime) -> dict[str, Any]:
    return {
        "name": name,
        "connection": fields["connection"] or "",
        "query": fields["query"] or "",
        "schedule": fields["schedule"],
        "applied_at": now,
    }


def rows_named(session: Session, table: type[Row], names: Sequence[str]) -> dict[str, Row]:
    """The rows of ``table`` whose ``name`` is among ``names``, read 500 names at a time."""
    key = col(table.name)
    found: dict[str, Row] = {}
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        found.update((r.name, r) for r in session.exec(select(table).where(key.in_(chunk))))
    return found
