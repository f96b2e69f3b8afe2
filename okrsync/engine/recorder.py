"""The commit point: measurement + key-result state + outbox rows in one transaction per result.

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from okrsync.config import ObjectiveDef
from okrsync.engine.evaluate import Evaluation
from okrsync.engine.pacing import DeliveryPolicy, earliest_push, worth_pushing
from okrsync.engine.planner import PlannedKeyResult
from okrsync.engine.progress import display_progress
from okrsync.redaction import Redactor
from okrsync.sdk.models import KeyResultUpdate, Status
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
    kr, objective = item.key_result, item.objective
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
        mirrors = session.exec(
            select(MirrorRow).where(
                MirrorRow.key_result_id == kr.id,
                MirrorRow.archived_at.is_(None),  # type: ignore[union-attr]
            )
        ).all()
        policies = {m.key: m.policy for m in kr.mirrors}
        queued = 0
        for mirror in mirrors:
            policy = policies.get(mirror.key, DeliveryPolicy())
            state = (row.progress, row.status)
            if not worth_pushing(policy, _last_queued(session, mirror.key), state):
                continue
            key = idempotency_key(mirror.key, measurement.id)
            update = build_update(objective, row, objective.cycle, now, key)
            session.add(
                DeliveryRow(
                    mirror_key=mirror.key,
                    key_result_id=kr.id,
                    measurement_id=measurement.id,
                    idempotency_key=key,
                    payload=update.model_dump(mode="json"),
                    created_at=now,
                    next_attempt_at=earliest_push(policy, now, mirror.last_delivered_at),
                )
            )
            queued += 1
        return Recorded(kr.id, True, measurement.id, queued)


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
