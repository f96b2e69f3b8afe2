"""The metric definitions last applied to the store, so ``plan`` can show a query's edit.

Kept without a table of their own: each time ``apply_definitions`` finds the metrics' definitions
(connection, query text, schedule) differ from the last ones applied, it records them in a run
row of trigger ``definitions`` (finished at once, no queries). Written only on a change, so a
daemon's passes add nothing; read newest first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from okrsync.domain.statuses import RunStatus
from okrsync.store.tables import RunRow

TRIGGER = "definitions"

MetricDefinitions = dict[str, dict[str, str | None]]


def recorded_metrics(session: Session) -> MetricDefinitions | None:
    """The metric definitions applied last; None when none were ever recorded."""
    row = session.exec(
        select(RunRow)
        .where(col(RunRow.trigger) == TRIGGER)
        .order_by(col(RunRow.started_at).desc(), col(RunRow.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    metrics: Any = row.detail.get("metrics")
    return metrics if isinstance(metrics, dict) else None


def record_metrics(session: Session, metrics: MetricDefinitions, now: datetime) -> None:
    session.add(
        RunRow(
            id=f"definitions-{uuid.uuid4().hex[:16]}",
            trigger=TRIGGER,
            started_at=now,
            finished_at=now,
            status=RunStatus.OK.value,
            detail={"metrics": metrics},
        )
    )
