"""The store's rows and read views as :mod:`okrsync.read_models.models`, for the API and the CLI.

Exact numbers become decimal strings; nothing else changes on the way.
"""

from __future__ import annotations

from decimal import Decimal

from okrsync.read_models import models as m
from okrsync.store import views
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow, RunRow


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def measurement(row: MeasurementRow) -> m.Measurement:
    return m.Measurement(
        id=row.id,
        value=decimal_text(row.value),
        progress=decimal_text(row.progress),
        status=row.status,
        observed_at=row.observed_at,
        run_id=row.run_id,
        origin=row.origin,
        note=row.note,
        provenance=list(row.provenance or []),
        confidence=row.confidence,
        author=row.author,
    )


def run(row: RunRow) -> m.Run:
    return m.Run(
        id=row.id,
        trigger=row.trigger,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        queries=row.queries,
        api_calls=row.api_calls,
        changed=row.changed,
        errors=row.errors,
        instance=row.instance_id,
        detail=dict(row.detail or {}),
    )


def key_result(objective: str, kr: views.KeyResultView) -> m.KeyResult:
    return m.KeyResult(
        id=kr.id,
        objective=objective,
        title=kr.title,
        kind=kr.kind,
        unit=kr.unit,
        value=decimal_text(kr.value),
        start=decimal_text(kr.start),
        target=decimal_text(kr.target),
        progress=decimal_text(kr.progress),
        status=kr.status,
        stale=kr.stale,
        observed_at=kr.observed_at,
        checked_at=kr.checked_at,
        last_error=kr.last_error,
        confidence=kr.confidence,
        score=decimal_text(kr.score),
    )


def objective(view: views.ObjectiveView) -> m.Objective:
    return m.Objective(
        id=view.id,
        title=view.title,
        cycle=view.cycle,
        owner=view.owner,
        progress=decimal_text(view.progress),
        status=view.status,
        elapsed=str(view.elapsed),
        key_results=[key_result(view.id, kr) for kr in view.key_results],
        score=decimal_text(view.score),
    )


def delivery(r: DeliveryRow) -> m.Delivery:
    return m.Delivery(
        id=r.id or 0,
        mirror=r.mirror_key,
        key_result=r.key_result_id,
        objective=r.objective_id,
        status=r.status,
        attempts=r.attempts,
        created_at=r.created_at,
        next_attempt_at=r.next_attempt_at,
        delivered_at=r.delivered_at,
        last_error=r.last_error,
    )


def connection(name: str, connection_type: str, row: views.ConnectionView | None) -> m.Connection:
    """A configured connection's health; ``unknown`` until the store has a row for it."""
    return m.Connection(
        name=name,
        type=connection_type,
        status=row.status if row else "unknown",
        consecutive_failures=row.consecutive_failures if row else 0,
        last_ok_at=row.last_ok_at if row else None,
        last_error_at=row.last_error_at if row else None,
        last_error=row.last_error if row else None,
        paused_until=row.paused_until if row else None,
    )


def explanation(
    row: KeyResultRow, current: MeasurementRow | None, recorded_by: RunRow | None
) -> m.Explanation:
    return m.Explanation(
        key_result=row.id,
        title=row.title,
        value=decimal_text(row.value),
        expression=row.expression,
        metric=row.metric,
        checked_at=row.checked_at,
        last_error=row.last_error,
        measurement=measurement(current) if current is not None else None,
        run=run(recorded_by) if recorded_by is not None else None,
    )
