"""The commit point: measurement + key-result state + outbox rows in one transaction per result.

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against (and, when
the mirrors were told the value had gone stale, queues the "confirmed again" delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, select

from okrsync.engine.evaluate import Evaluation
from okrsync.engine.outbox import on_change, staleness_changed
from okrsync.engine.planner import PlannedKeyResult
from okrsync.redaction import Redactor
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow, MeasurementRow


@dataclass(frozen=True)
class Recorded:
    key_result_id: str
    changed: bool
    measurement_id: int | None
    deliveries: int
    error: str | None = None


def record(
    engine: Engine,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    *,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
    origin: str = "auto",
    note: str | None = None,
) -> Recorded:
    """Store one key result's evaluation; queue a delivery per mirror when its value changed."""
    kr = item.key_result
    with session_scope(engine) as session:
        row = _locked_row(session, kr.id)
        if not evaluation.ok:
            row.last_error = redactor.redact(evaluation.error or "no value")
            row.last_error_at = now
            session.add(row)
            return Recorded(kr.id, False, None, 0, row.last_error)
        value = evaluation.value
        assert value is not None
        row.checked_at = now
        row.last_error = None
        if _same(row.value, value) and origin == "auto":
            fresh_again = _end_stale_episode(session, item, row, now)
            session.add(row)
            return Recorded(kr.id, False, row.last_measurement_id, fresh_again)
        measurement = MeasurementRow(
            key_result_id=kr.id,
            value=value,
            progress=evaluation.progress,
            status=evaluation.status.value,
            observed_at=now,
            run_id=run_id,
            origin=origin,
            note=note,
            provenance=[redactor.redact_value(p) for p in evaluation.provenance],
        )
        session.add(measurement)
        session.flush()
        assert measurement.id is not None
        row.value = value
        row.progress = evaluation.progress
        row.status = evaluation.status.value
        row.observed_at = now
        row.last_measurement_id = measurement.id
        session.add(row)
        queued = on_change(session, item.objective, item.cycle, row, measurement.id, now)
        queued += _end_stale_episode(session, item, row, now)
        return Recorded(kr.id, True, measurement.id, queued)


def _end_stale_episode(
    session: Session, item: PlannedKeyResult, row: KeyResultRow, now: datetime
) -> int:
    """A source confirmed a value whose staleness was announced: tell the same mirrors.

    Queued even when the value also changed: ``min_change`` may hold the change back, and the
    mirror must not keep saying "stale". The dispatcher pushes only a mirror's newest row.
    """
    episode = row.stale_announced_for
    if episode is None:
        return 0
    row.stale_announced_for = None
    return staleness_changed(session, item.objective, item.cycle, row, episode, now, stale=False)


def _locked_row(session: Session, kr_id: str) -> KeyResultRow:
    statement = select(KeyResultRow).where(KeyResultRow.id == kr_id).with_for_update()
    row = session.exec(statement).one_or_none()
    if row is None:
        raise LookupError(f"key result {kr_id!r} is not in the store; run the definitions sync")
    return row


def _same(old: Decimal | None, new: Decimal) -> bool:
    return old is not None and old == new
