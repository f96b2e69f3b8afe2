"""The commit point: measurement + key-result state + outbox rows committed together.

One transaction per key result (:func:`record`, for values set by hand) or per batch of a
pass's key results (:func:`record_all`).

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against (and, when
the mirrors were told the value had gone stale, queues the "confirmed again" delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

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


BATCH = 500
"""Key results recorded per transaction by :func:`record_all` (one commit per key result cost
more than the rest of a 10,000 key-result refresh together)."""


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
    with session_scope(engine) as session:
        (row,) = _locked_rows(session, [item.key_result.id])
        return _apply(session, row, item, evaluation, run_id, now, redactor, origin, note)


def record_all(
    engine: Engine,
    evaluated: Sequence[tuple[Evaluation, PlannedKeyResult]],
    *,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
) -> list[Recorded]:
    """Record a pass's evaluations, ``BATCH`` key results per transaction.

    A batch commits its measurements, states and outbox rows together, so a crash keeps the
    guarantee of :func:`record`. If a batch fails for one key result, it is rolled back and
    recorded again one key result per transaction, so the others are kept as before.
    """
    recorded: list[Recorded] = []
    for start in range(0, len(evaluated), BATCH):
        chunk = evaluated[start : start + BATCH]
        try:
            with session_scope(engine) as session:
                rows = _locked_rows(session, [item.key_result.id for _e, item in chunk])
                done = [
                    _apply(session, row, item, evaluation, run_id, now, redactor)
                    for row, (evaluation, item) in zip(rows, chunk, strict=True)
                ]
        except LookupError:
            done = [
                record(engine, item, evaluation, run_id=run_id, now=now, redactor=redactor)
                for evaluation, item in chunk
            ]
        recorded += done
    return recorded


def _apply(
    session: Session,
    row: KeyResultRow,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
    origin: str = "auto",
    note: str | None = None,
) -> Recorded:
    kr = item.key_result
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


def _locked_rows(session: Session, ids: Sequence[str]) -> list[KeyResultRow]:
    """The rows of ``ids``, in that order, locked for this transaction (taken in id order, so
    two replicas recording overlapping key results cannot deadlock)."""
    statement = (
        select(KeyResultRow)
        .where(col(KeyResultRow.id).in_(set(ids)))
        .order_by(col(KeyResultRow.id))
        .with_for_update()
    )
    found = {row.id: row for row in session.exec(statement)}
    missing = [kr_id for kr_id in ids if kr_id not in found]
    if missing:
        raise LookupError(
            f"key result {missing[0]!r} is not in the store; run the definitions sync"
        )
    return [found[kr_id] for kr_id in ids]


def _same(old: Decimal | None, new: Decimal) -> bool:
    return old is not None and old == new
