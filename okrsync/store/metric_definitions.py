"""The metric definitions last applied to the store, so ``plan`` can show a query's edit.

One ``metric_definitions`` row per metric (connection, query text, schedule). ``apply`` writes
only the rows of metrics added or changed and deletes those of metrics removed, so a daemon's
passes write nothing and one edited query is one row, however many metrics there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlmodel import Session, col, select

from okrsync.store.tables import ConnectionDefinitionRow, MetricDefinitionRow

MetricDefinitions = dict[str, dict[str, str | None]]

CHUNK = 500


Row = TypeVar("Row", MetricDefinitionRow, ConnectionDefinitionRow)


def recorded_metrics(session: Session) -> MetricDefinitions:
    """The metric definitions applied last, by name; empty when none were ever applied."""
    return {
        row.name: {"connection": row.connection, "query": row.query, "schedule": row.schedule}
        for row in session.exec(select(MetricDefinitionRow).order_by(MetricDefinitionRow.name))
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
    one statement per row written, one read per 500 rows changed or removed."""
    rows = rows_named(session, MetricDefinitionRow, [*changed, *removed])
    rows.update(
        (name, MetricDefinitionRow(name=name, connection="", query="", applied_at=now))
        for name in added
    )
    for name in [*added, *changed]:
        fields, row = wanted[name], rows[name]
        row.connection = fields["connection"] or ""
        row.query = fields["query"] or ""
        row.schedule = fields["schedule"]
        row.applied_at = now
        session.add(row)
    for name in removed:
        session.delete(rows[name])


def rows_named(session: Session, table: type[Row], names: Sequence[str]) -> dict[str, Row]:
    """The rows of ``table`` whose ``name`` is among ``names``, read 500 names at a time."""
    key = col(table.name)
    found: dict[str, Row] = {}
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        found.update((r.name, r) for r in session.exec(select(table).where(key.in_(chunk))))
    return found
