"""Read models over the store for ``status``, ``history`` and ``explain`` (and later the API).

Status is recomputed at read time from the stored progress and the current clock: pace against the
cycle changes as days pass even when the value does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from okrsync.engine.progress import KRKind
from okrsync.engine.status import Weighted, elapsed_fraction, objective_status, rollup, status_for
from okrsync.store.tables import (
    ConnectionStateRow,
    CycleRow,
    DeliveryRow,
    KeyResultRow,
    MeasurementRow,
    MirrorRow,
    ObjectiveRow,
    RunRow,
)


@dataclass(frozen=True)
class KeyResultView:
    id: str
    title: str
    kind: str
    value: Decimal | None
    start: Decimal | None
    target: Decimal | None
    unit: str | None
    progress: Decimal | None
    status: str
    stale: bool
    observed_at: datetime | None
    checked_at: datetime | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ObjectiveView:
    id: str
    title: str
    cycle: str
    owner: str | None
    progress: Decimal | None
    status: str
    elapsed: Decimal
    key_results: list[KeyResultView]

    def as_json(self) -> dict[str, Any]:
        data = _jsonable({k: v for k, v in asdict(self).items() if k != "key_results"})
        data["key_results"] = [kr.as_json() for kr in self.key_results]
        return data


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def stale_deadline(checked_at: datetime, stale_after_seconds: int) -> datetime:
    """The moment past which a value confirmed at ``checked_at`` is stale."""
    return checked_at + timedelta(seconds=stale_after_seconds)


def is_stale(row: KeyResultRow, now: datetime) -> bool:
    if row.stale_after_seconds is None:
        return False
    seen = row.checked_at or row.observed_at
    return seen is None or now > stale_deadline(seen, row.stale_after_seconds)


def status_view(session: Session, now: datetime) -> list[ObjectiveView]:
    cycles = {c.id: c for c in session.exec(select(CycleRow))}
    objectives = session.exec(
        select(ObjectiveRow)
        .where(col(ObjectiveRow.archived_at).is_(None))
        .order_by(col(ObjectiveRow.position))
    ).all()
    krs_by_objective: dict[str, list[KeyResultRow]] = {}
    for kr in session.exec(
        select(KeyResultRow)
        .where(col(KeyResultRow.archived_at).is_(None))
        .order_by(col(KeyResultRow.position))
    ):
        krs_by_objective.setdefault(kr.objective_id, []).append(kr)
    views = []
    for objective in objectives:
        cycle = cycles[objective.cycle_id]
        elapsed = elapsed_fraction(cycle.start, cycle.end, now)
        krs = []
        for row in krs_by_objective.get(objective.id, []):
            krs.append(
                KeyResultView(
                    id=row.id,
                    title=row.title,
                    kind=row.kind,
                    value=row.value,
                    start=row.start,
                    target=row.target,
                    unit=row.unit,
                    progress=row.progress,
                    status=status_for(KRKind(row.kind), row.progress, elapsed).value,
                    stale=is_stale(row, now),
                    observed_at=row.observed_at,
                    checked_at=row.checked_at,
                    last_error=row.last_error,
                )
            )
        rows = krs_by_objective.get(objective.id, [])
        progress = rollup([Weighted(r.progress, r.weight) for r in rows])
        views.append(
            ObjectiveView(
                id=objective.id,
                title=objective.title,
                cycle=objective.cycle_id,
                owner=objective.owner,
                progress=progress,
                status=objective_status(progress, elapsed).value,
                elapsed=elapsed,
                key_results=krs,
            )
        )
    return views


def key_result(session: Session, kr_id: str) -> KeyResultRow | None:
    return session.get(KeyResultRow, kr_id)


def history(session: Session, kr_id: str, limit: int = 100) -> list[MeasurementRow]:
    rows = session.exec(
        select(MeasurementRow)
        .where(MeasurementRow.key_result_id == kr_id)
        .order_by(col(MeasurementRow.observed_at).desc(), col(MeasurementRow.id).desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def measurement_json(row: MeasurementRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "value": None if row.value is None else str(row.value),
        "progress": None if row.progress is None else str(row.progress),
        "status": row.status,
        "observed_at": row.observed_at.isoformat(),
        "run_id": row.run_id,
        "origin": row.origin,
        "note": row.note,
        "provenance": row.provenance,
    }


def current_measurement(session: Session, row: KeyResultRow) -> MeasurementRow | None:
    if row.last_measurement_id is None:
        return None
    return session.get(MeasurementRow, row.last_measurement_id)


def run(session: Session, run_id: str | None) -> RunRow | None:
    return None if run_id is None else session.get(RunRow, run_id)


@dataclass(frozen=True)
class ConnectionView:
    name: str
    type: str
    status: str
    consecutive_failures: int
    last_ok_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    paused_until: datetime | None

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def connections_view(session: Session) -> list[ConnectionView]:
    rows = session.exec(select(ConnectionStateRow).order_by(col(ConnectionStateRow.name))).all()
    return [
        ConnectionView(
            r.name,
            r.type,
            r.status,
            r.consecutive_failures,
            r.last_ok_at,
            r.last_error_at,
            r.last_error,
            r.paused_until,
        )
        for r in rows
    ]


def deliveries_done(session: Session) -> dict[str, int]:
    """Pushes delivered so far, per mirror connection."""
    rows = session.exec(
        select(MirrorRow.connection, func.count())
        .select_from(DeliveryRow)
        .join(MirrorRow, col(MirrorRow.key) == col(DeliveryRow.mirror_key))
        .where(DeliveryRow.status == "done")
        .group_by(col(MirrorRow.connection))
    ).all()
    return {connection: count for connection, count in sorted(rows)}
