"""The commit point: measurement + key-result state + outbox rows in one transaction per result.

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from okrsync.config import ObjectiveDef
from okrsync.engine.evaluate import Evaluation
from okrsync.engine.pacing import DeliveryPolicy, earliest_push, worth_pushing
from okrsync.engine.planner import PlannedKeyResult
from okrsync.engine.progress import display_progress
from okrsync.engine.status import Weighted, elapsed_fraction, objective_status, rollup
from okrsync.redaction import Redactor
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow, MirrorRow


@dataclass(frozen=True)
class Recorded:
    key_result_id: str
    changed: bool
    measurement_id: int | None
    deliveries: int
    error: str | None = None


def idempotency_key(mirror_key: str, measurement_id: int) -> str:
    """Stable per (mirror, measurement): a re-delivery after a crash carries the same key."""
    return hashlib.sha256(f"{mirror_key}#{measurement_id}".encode()).hexdigest()[:40]


def build_update(
    objective: ObjectiveDef, row: KeyResultRow, cycle_id: str, observed_at: datetime, key: str
) -> KeyResultUpdate:
    return KeyResultUpdate(
        objective_id=objective.id,
        objective_title=objective.title,
        key_result_id=row.id,
        key_result_title=row.title,
        cycle_id=cycle_id,
        kind=row.kind,
        value=row.value,
        start=row.start,
        target=row.target,
        unit=row.unit,
        progress=row.progress,
        progress_display=None if row.progress is None else display_progress(row.progress),
        status=Status(row.status),
        observed_at=observed_at,
        idempotency_key=key,
    )


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
            session.add(row)
            return Recorded(kr.id, False, row.last_measurement_id, 0)
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
        queued = _enqueue_key_result(session, item, row, measurement.id, now)
        queued += _enqueue_digests(session, item, measurement.id, now)
        return Recorded(kr.id, True, measurement.id, queued)


def _enqueue_key_result(
    session: Session, item: PlannedKeyResult, row: KeyResultRow, measurement_id: int, now: datetime
) -> int:
    """One outbox row per mirror of the key result that its pacing lets through."""
    policies = {m.key: m.policy for m in item.key_result.mirrors}
    queued = 0
    for mirror in _live_mirrors(session, MirrorRow.key_result_id == row.id):
        policy = policies.get(mirror.key, DeliveryPolicy())
        if not worth_pushing(policy, _last_queued(session, mirror.key), (row.progress, row.status)):
            continue
        key = idempotency_key(mirror.key, measurement_id)
        update = build_update(item.objective, row, item.objective.cycle, now, key)
        session.add(
            DeliveryRow(
                mirror_key=mirror.key,
                key_result_id=row.id,
                measurement_id=measurement_id,
                idempotency_key=key,
                payload=update.model_dump(mode="json"),
                created_at=now,
                next_attempt_at=earliest_push(policy, now, mirror.last_delivered_at),
            )
        )
        queued += 1
    return queued


def _enqueue_digests(
    session: Session, item: PlannedKeyResult, measurement_id: int, now: datetime
) -> int:
    """One outbox row per digest mirror of the objective, carrying all its key results."""
    objective = item.objective
    if not objective.mirrors:
        return 0
    policies = {m.key: m.policy for m in objective.mirrors}
    rows = session.exec(
        select(KeyResultRow)
        .where(KeyResultRow.objective_id == objective.id, col(KeyResultRow.archived_at).is_(None))
        .order_by(col(KeyResultRow.position))
    ).all()
    elapsed = elapsed_fraction(item.cycle.start, item.cycle.end, now)
    progress = rollup([Weighted(r.progress, r.weight) for r in rows])
    status = objective_status(progress, elapsed)
    queued = 0
    for mirror in _live_mirrors(session, MirrorRow.objective_id == objective.id):
        policy = policies.get(mirror.key, DeliveryPolicy())
        if not worth_pushing(policy, _last_queued(session, mirror.key), (progress, status.value)):
            continue
        key = idempotency_key(mirror.key, measurement_id)
        update = ObjectiveUpdate(
            objective_id=objective.id,
            objective_title=objective.title,
            cycle_id=objective.cycle,
            owner=objective.owner,
            progress=progress,
            status=status,
            observed_at=now,
            idempotency_key=key,
            key_results=tuple(build_update(objective, r, objective.cycle, now, key) for r in rows),
        )
        session.add(
            DeliveryRow(
                mirror_key=mirror.key,
                objective_id=objective.id,
                measurement_id=measurement_id,
                idempotency_key=key,
                payload=update.model_dump(mode="json"),
                created_at=now,
                next_attempt_at=earliest_push(policy, now, mirror.last_delivered_at),
            )
        )
        queued += 1
    return queued


def _live_mirrors(session: Session, owner: Any) -> Sequence[MirrorRow]:
    return session.exec(select(MirrorRow).where(owner, col(MirrorRow.archived_at).is_(None))).all()


def _locked_row(session: Session, kr_id: str) -> KeyResultRow:
    statement = select(KeyResultRow).where(KeyResultRow.id == kr_id).with_for_update()
    row = session.exec(statement).one_or_none()
    if row is None:
        raise LookupError(f"key result {kr_id!r} is not in the store; run the definitions sync")
    return row


def _last_queued(session: Session, mirror_key: str) -> tuple[Decimal | None, str] | None:
    """Progress and status of the newest state sent or waiting to be sent to a mirror."""
    row = session.exec(
        select(DeliveryRow)
        .where(DeliveryRow.mirror_key == mirror_key, DeliveryRow.status != "superseded")
        .order_by(col(DeliveryRow.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    progress = row.payload.get("progress")
    return (None if progress is None else Decimal(progress), str(row.payload.get("status")))


def _same(old: Decimal | None, new: Decimal) -> bool:
    return old is not None and old == new
