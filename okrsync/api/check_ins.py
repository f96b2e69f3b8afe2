"""A value checked in by hand, recorded once: the store side of ``POST .../check-ins``.

A check-in is recorded like a source's value (origin ``manual``), and queues mirrors as any
change does. Sent again, it records nothing and is answered as the first time: by its
``Idempotency-Key``, or without one by the same value and note within :data:`REPEAT_WINDOW`;
two replicas given the same check-in at once record it once (the store's unique request key).
Everything here runs in a worker thread (:func:`okrsync.api.offload.in_thread`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.responses import Response

from okrsync.api import models as m
from okrsync.api.answers import answer
from okrsync.api.context import ApiContext
from okrsync.api.errors import BadInput
from okrsync.domain.evaluate import Evaluation
from okrsync.domain.planner import PlannedKeyResult
from okrsync.engine.recorder import record
from okrsync.read_models import from_store
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MeasurementRow

log = structlog.get_logger()

REPEAT_WINDOW = timedelta(minutes=5)
"""Without an ``Idempotency-Key``, a check-in with the value and note of its key result's latest
manual measurement, made less than this long ago, is that one sent again (a double click, a
client retrying after a timeout it took for a failure) and records nothing. Long enough for a
client's retries; short enough that the same number reported at the next meeting is heard."""

IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,100}")  # visible ASCII: what a header carries unchanged


@dataclass(frozen=True)
class Attempt:
    """A check-in as it would be stored, and the ``Idempotency-Key`` it came with."""

    key_result_id: str
    value: Decimal
    note: str | None  # redacted, as stored
    idempotency_key: str | None

    def same_as(self, row: MeasurementRow) -> bool:
        return row.value == self.value and row.note == self.note


def idempotency_key_of(given: list[str]) -> str | None:
    """The check-in's ``Idempotency-Key`` from every such header sent: none, or exactly one
    of 1 to 100 visible ASCII characters (a 422 otherwise)."""
    if not given:
        return None
    if len(given) > 1 or IDEMPOTENCY_KEY.fullmatch(given[0]) is None:
        raise BadInput(
            422,
            "invalid Idempotency-Key header",
            "one header of 1 to 100 visible ASCII characters (no spaces)",
        )
    return given[0]


def _request_key(kind: str, *parts: str | None) -> str:
    """``kind:`` and the SHA-256 of ``parts`` as a JSON list (no two lists share a text): fits
    ``measurements.request_key`` whatever the parts' length."""
    return f"{kind}:{hashlib.sha256(json.dumps(parts).encode()).hexdigest()}"


def _recorded_for(session: Session, attempt: Attempt, request_key: str) -> MeasurementRow | None:
    """The measurement recorded for ``request_key``; 422 when it is another check-in's."""
    statement = select(MeasurementRow).where(MeasurementRow.request_key == request_key)
    first = session.exec(statement).first()
    if first is not None and not attempt.same_as(first):
        raise BadInput(
            422,
            "Idempotency-Key already used",
            f"it recorded another check-in (value {first.value}): send a new key for a new one",
        )
    return first


def first_of(
    session: Session, attempt: Attempt, now: datetime
) -> tuple[MeasurementRow | None, str]:
    """The measurement ``attempt`` repeats, if any, and the request key to record it with.

    With an ``Idempotency-Key``, the measurement recorded under it. Without, the key result's
    latest manual measurement when it has the same value and note and is younger than
    ``REPEAT_WINDOW``. The key then digests the content and that latest measurement's id, so two
    identical check-ins sent at once (to two replicas) make the same key, and the store's unique
    constraint records one of them. Sent again after the window, its latest measurement is the
    first one, so its key is new.
    """
    if attempt.idempotency_key is not None:
        key = _request_key("key", attempt.key_result_id, attempt.idempotency_key)
        return _recorded_for(session, attempt, key), key
    latest = session.exec(
        select(MeasurementRow)
        .where(MeasurementRow.key_result_id == attempt.key_result_id)
        .where(MeasurementRow.origin == "manual")
        .order_by(col(MeasurementRow.observed_at).desc(), col(MeasurementRow.id).desc())
        .limit(1)
    ).first()
    previous = None if latest is None else str(latest.id)
    value = str(m.ROUNDING.normalize(attempt.value))  # 6 and 6.00 make one key
    key = _request_key("same", attempt.key_result_id, value, attempt.note, previous)
    repeats = (
        latest is not None
        and attempt.same_as(latest)
        and abs(now - latest.observed_at) < REPEAT_WINDOW  # abs: replicas' clocks differ a bit
    )
    return (latest if repeats else None), key


def _queued_with(session: Session, row: MeasurementRow, objective_id: str) -> int:
    """The outbox rows queued by the check-in that recorded ``row``: those of its transaction,
    stamped with its time; changes name the measurement, and a stale episode's end, announced
    for the key result or its objective, names none."""
    made_with = or_(
        col(DeliveryRow.measurement_id) == row.id,
        and_(
            col(DeliveryRow.measurement_id).is_(None),
            or_(
                col(DeliveryRow.key_result_id) == row.key_result_id,
                col(DeliveryRow.objective_id) == objective_id,
            ),
        ),
    )
    count = select(func.count()).where(col(DeliveryRow.created_at) == row.observed_at, made_with)
    return int(session.exec(count).one())


def _check_in_answer(
    ctx: ApiContext, row: MeasurementRow, deliveries: int, *, replayed: bool
) -> Response:
    result = m.CheckInResult(
        key_result=row.key_result_id,
        measurement=from_store.measurement(row),
        deliveries_queued=deliveries,
    )
    response = answer(ctx, result, 201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _replay(ctx: ApiContext, row: MeasurementRow, objective_id: str, why: str) -> Response:
    """The first check-in's answer again: nothing recorded, nothing queued."""
    log.info("manual_check_in_repeated", key_result=row.key_result_id, measurement=row.id, by=why)
    with session_scope(ctx.engine) as session:
        queued = _queued_with(session, row, objective_id)
    return _check_in_answer(ctx, row, queued, replayed=True)


def record_check_in(
    ctx: ApiContext,
    attempt: Attempt,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    now: datetime,
) -> tuple[Response, int]:
    """The store side of a check-in, in a worker thread: the repeat it may be, else the record;
    the answer, and how many deliveries it queued (0 for a repeat)."""
    wanted, objective_id = attempt.key_result_id, item.objective.id
    with session_scope(ctx.engine) as session:
        first, request_key = first_of(session, attempt, now)
    if first is not None:
        why = "window" if attempt.idempotency_key is None else "idempotency_key"
        return _replay(ctx, first, objective_id, why), 0
    try:
        recorded = record(
            ctx.engine,
            item,
            evaluation,
            run_id=None,
            now=now,
            redactor=ctx.redactor,
            origin="manual",
            note=attempt.note,
            request_key=request_key,
        )
    except LookupError:
        raise BadInput(404, "key result not in the store yet", wanted) from None
    except IntegrityError:  # the same request, recorded meanwhile (by another replica)
        with session_scope(ctx.engine) as session:
            first = _recorded_for(session, attempt, request_key)
        if first is None:
            raise
        return _replay(ctx, first, objective_id, "concurrent"), 0
    log.info("manual_check_in", key_result=wanted, deliveries=recorded.deliveries)
    with session_scope(ctx.engine) as session:
        row = session.get(MeasurementRow, recorded.measurement_id)
        assert row is not None
    return _check_in_answer(ctx, row, recorded.deliveries, replayed=False), recorded.deliveries
