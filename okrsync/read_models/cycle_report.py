"""A cycle's report: its objectives and key results with their final (or current) scores.

For a closed cycle the numbers come from its frozen close-out record (``cycle_closeouts``), never
from the key results' live state, which may have moved on (an objective that follows
``cycle: current`` rolls into the next cycle). For a cycle still open they are the current
state, scored the same way. Each key result carries its measurements within the cycle (for the
burn-up chart) and the confidence of each check-in (the trend; empty while no check-in gave
one). Exact numbers are decimal strings, as everywhere in the read models.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field
from sqlmodel import Session, col, select

from okrsync.config import Config, CycleDef, ObjectiveDef
from okrsync.domain.cycles import day_start, ends_at, state_at
from okrsync.domain.progress import ONE
from okrsync.domain.status import elapsed_fraction
from okrsync.engine.closeout import KEY_RESULT, OBJECTIVE, objective_standing
from okrsync.read_models.models import Model
from okrsync.store.tables import CycleCloseoutRow, CycleRow, KeyResultRow, MeasurementRow


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class ReportPoint(Model):
    at: datetime
    value: str | None


class ConfidencePoint(Model):
    at: datetime
    confidence: int


class KeyResultReport(Model):
    id: str
    title: str
    kind: str
    unit: str | None
    weight: str
    start: str | None
    target: str | None
    low: str | None = None
    high: str | None = None
    value: str | None
    progress: str | None = Field(description="Unclamped: 1 = target reached.")
    status: str
    score: str | None = Field(description="0-1: final for a closed cycle, else as of now.")
    confidence: int | None = Field(description="The latest check-in's confidence (1-10).")
    confidence_trend: list[ConfidencePoint]
    measurements: list[ReportPoint]


class ObjectiveReport(Model):
    id: str
    title: str
    owner: str | None
    weight: str
    progress: str | None
    status: str
    score: str | None
    key_results: list[KeyResultReport]


class CycleReport(Model):
    id: str
    start: date
    end: date
    state: str = Field(description="upcoming, active, closing or closed.")
    closed_at: datetime | None
    final: bool = Field(description="True: the scores are the frozen close-out record.")
    objectives: list[ObjectiveReport]


def build_cycle_report(
    session: Session, config: Config, cycle_id: str, now: datetime
) -> CycleReport:
    """The report of ``cycle_id`` (a cycle of ``config``) as of ``now``."""
    cycle = config.cycles[cycle_id]
    row = session.get(CycleRow, cycle_id)
    closed_at = row.closed_at if row is not None else None
    state = state_at(cycle.span(), now, close_after=cycle.close_after, closed_at=closed_at)
    objectives = [o for o in config.objectives if o.cycle == cycle_id]
    frozen = list(
        session.exec(
            select(CycleCloseoutRow)
            .where(CycleCloseoutRow.cycle_id == cycle_id)
            .order_by(col(CycleCloseoutRow.id))
        )
    )
    if closed_at is not None and frozen:
        reports = _from_record(frozen)
    else:
        reports = [_current(session, objective, cycle, now) for objective in objectives]
    kr_ids = [kr.id for o in reports for kr in o.key_results]
    samples, trends = _history(session, kr_ids, cycle)
    for objective in reports:
        for kr in objective.key_results:
            kr.measurements = samples.get(kr.id, [])
            kr.confidence_trend = trends.get(kr.id, [])
            if kr.confidence is None and kr.confidence_trend:
                kr.confidence = kr.confidence_trend[-1].confidence
    return CycleReport(
        id=cycle.id,
        start=cycle.start,
        end=cycle.end,
        state=state.value,
        closed_at=closed_at,
        final=closed_at is not None and bool(frozen),
        objectives=reports,
    )


def _from_record(rows: list[CycleCloseoutRow]) -> list[ObjectiveReport]:
    krs: dict[str, list[KeyResultReport]] = {}
    for r in rows:
        if r.subject == KEY_RESULT:
            krs.setdefault(r.objective_id, []).append(
                KeyResultReport(
                    id=r.subject_id,
                    title=r.title,
                    kind=r.kind or "",
                    unit=r.unit,
                    weight=format(r.weight, "f"),
                    start=_text(r.start),
                    target=_text(r.target),
                    value=_text(r.value),
                    progress=_text(r.progress),
                    status=r.status,
                    score=_text(r.score),
                    confidence=r.confidence,
                    confidence_trend=[],
                    measurements=[],
                )
            )
    return [
        ObjectiveReport(
            id=r.subject_id,
            title=r.title,
            owner=None,
            weight=format(r.weight, "f"),
            progress=_text(r.progress),
            status=r.status,
            score=_text(r.score),
            key_results=krs.get(r.subject_id, []),
        )
        for r in rows
        if r.subject == OBJECTIVE
    ]


def _current(
    session: Session, objective: ObjectiveDef, cycle: CycleDef, now: datetime
) -> ObjectiveReport:
    ids = [kr.id for kr in objective.key_results]
    rows = {
        r.id: r for r in session.exec(select(KeyResultRow).where(col(KeyResultRow.id).in_(ids)))
    }
    elapsed = elapsed_fraction(cycle.start, cycle.end, now) if now < ends_at(cycle.span()) else ONE
    standing = objective_standing(objective, rows, elapsed)
    krs = [
        KeyResultReport(
            id=kr.definition.id,
            title=kr.definition.title,
            kind=kr.definition.kind.value,
            unit=kr.definition.unit,
            weight=format(kr.definition.weight, "f"),
            start=_text(kr.definition.start),
            target=_text(kr.definition.target),
            low=_text(kr.definition.low),
            high=_text(kr.definition.high),
            value=_text(kr.value),
            progress=_text(kr.progress),
            status=kr.status,
            score=_text(kr.score),
            confidence=kr.confidence,
            confidence_trend=[],
            measurements=[],
        )
        for kr in standing.key_results
    ]
    return ObjectiveReport(
        id=objective.id,
        title=objective.title,
        owner=objective.owner,
        weight=format(objective.weight, "f"),
        progress=_text(standing.progress),
        status=standing.status,
        score=_text(standing.score),
        key_results=krs,
    )


def _history(
    session: Session, kr_ids: list[str], cycle: CycleDef
) -> tuple[dict[str, list[ReportPoint]], dict[str, list[ConfidencePoint]]]:
    """Each key result's measurements within the cycle (and its grace period), and the
    confidence of each that carries one (check-ins)."""
    if not kr_ids:
        return {}, {}
    begin = day_start(cycle.start)
    until = ends_at(cycle.span()) + cycle.close_after
    statement = (
        select(
            col(MeasurementRow.key_result_id),
            col(MeasurementRow.observed_at),
            col(MeasurementRow.value),
            col(MeasurementRow.confidence),
        )
        .where(
            col(MeasurementRow.key_result_id).in_(kr_ids),
            col(MeasurementRow.observed_at) >= begin,
            col(MeasurementRow.observed_at) < until,
        )
        .order_by(col(MeasurementRow.key_result_id), col(MeasurementRow.observed_at))
    )
    samples: dict[str, list[ReportPoint]] = {}
    trends: dict[str, list[ConfidencePoint]] = {}
    for kr_id, at, value, confidence in session.exec(statement):
        samples.setdefault(kr_id, []).append(ReportPoint(at=at, value=_text(value)))
        if confidence is not None:
            trends.setdefault(kr_id, []).append(ConfidencePoint(at=at, confidence=confidence))
    return samples, trends
