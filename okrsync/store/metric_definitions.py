"""The metric definitions last applied to the store, so ``plan`` can show a query's edit.

One ``metric_definitions`` row per metric (connection, query text, schedule). ``apply`` writes
only the rows of metrics added or changed and deletes those of metrics removed, so a daemon's
passes write nothing and one edited query is one row, however many metrics there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, select

from okrsync.store.tables import MetricDefinitionRow

MetricDefinitions = dict[str, dict[str, str | None]]


def recorded_metrics(session: Session) -> MetricDefinitions:
    """The metric definitions applied last, by name; empty when none were ever applied."""
    return {
        row.name: {"connection": row.connection, "query": row.query, "schedule": row.schedule}
        for row in session.exec(select(MetricDefinitionRow).order_by(MetricDefinitionRow.name))
    }


def record_metrics(
    session: Session,
    wanted: MetricDefinitions,
    written: Iterable[str],
    removed: Iterable[str],
    now: datetime,
) -> None:
    """Write the definitions of the metrics named in ``written`` and delete ``removed``'s."""
    for name in written:
        fields = wanted[name]
        row = session.get(MetricDefinitionRow, name) or MetricDefinitionRow(
            name=name, connection="", query="", applied_at=now
        )
        row.connection = fields["connection"] or ""
        row.query = fields["query"] or ""
        row.schedule = fields["schedule"]
        row.applied_at = now
        session.add(row)
    for name in removed:
        gone = session.get(MetricDefinitionRow, name)
        if gone is not None:
            session.delete(gone)
