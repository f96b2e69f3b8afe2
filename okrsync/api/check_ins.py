"""A check-in, recorded once: the store side of ``POST .../check-ins`` and of any other way in.

A check-in carries a value, a confidence (1 to 10) or both, a note, and who made it. It is
recorded like a source's value (origin ``manual``), and queues mirrors as any change does. A
check-in without a value records the key result's current value with its confidence and note.
On a key result fed by a metric, whether a value checked in by hand counts is the key result's
``check_ins.manual_value`` rule (:mod:`okrsync.domain.precedence`). :func:`check_in` is the
way in without HTTP (for Slack, the dashboard): it takes a :class:`CheckInRequest` and answers a
:class:`CheckInOutcome`, refusing with :class:`BadInput` (its ``status`` and ``detail`` say why).

Sent again, it records nothing and is answered as the first time: by its
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
from decimal import Decimal, DecimalException

import structlog
from sqlalchemy import Engine, and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.responses import Response

from okrsync.api import models as m
from okrsync.api.answers import answer
from okrsync.api.context import ApiContext
from okrsync.api.errors import BadInput
from okrsync.config import Config
from okrsync.domain.evaluate import Evaluation
from okrsync.domain.planner import PlannedKeyResult
from okrsync.domain.precedence import check_in_may_set_value
from okrsync.domain.progress import progress
from okrsync.domain.status import elapsed_fraction, status_for
from okrsync.engine.grades import CheckInMark
from okrsync.engine.recorder import record
from okrsync.read_models import from_store
from okrsync.redaction import Redactor
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow

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
    confidence: int | None = None

    def same_as(self, row: MeasurementRow) -> bool:
        return (
            row.value == self.value and row.note == self.note and row.confidence == self.confidence
        )


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
    parts: tuple[str | None, ...] = (attempt.key_result_id, value, attempt.note, previous)
    if attempt.confidence is not None:  # keys of check-ins without one stay as they were
        parts = (*parts, str(attempt.confidence))
    key = _request_key("same", *parts)
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


API_AUTHOR = "api"
"""Who a check-in through the JSON API is recorded as: its one bearer token has no other name
(the sign-in work passes its principal instead)."""

CONFIDENCE_RANGE = range(1, 11)


@dataclass(frozen=True)
class CheckInRequest:
    """A check-in as a person made it, from whichever way in (API, Slack, dashboard)."""

    key_result_id: str
    value: Decimal | None = None  # None: confidence and note only
    confidence: int | None = None  # 1 to 10
    note: str | None = None  # as given; redacted before it is stored
    author: str | None = None
    idempotency_key: str | None = None
    source: str = "api"  # where it came from, kept in its provenance


@dataclass(frozen=True)
class CheckInOutcome:
    """The measurement a check-in recorded (or, for a repeat, the first one's), and how many
    deliveries it queued (the first one's for a repeat: ``replayed``)."""

    measurement: MeasurementRow
    deliveries: int
    replayed: bool
    queued_now: int  # deliveries this call queued: 0 for a repeat


def check_in(
    engine: Engine, config: Config, redactor: Redactor, request: CheckInRequest, now: datetime
) -> CheckInOutcome:
    """Record ``request`` once (blocking: call it in a worker thread from async code).

    Refused with :class:`BadInput`: 404 for an unknown key result; 422 for a confidence outside
    1 to 10, a check-in with neither value nor confidence, a value for a key result whose source
    alone sets it (``manual_value: ignore``), a value whose progress cannot be computed, or a
    check-in without a value on a key result that has none yet.
    """
    wanted = request.key_result_id
    try:
        kr = config.key_result(wanted)
    except KeyError:
        raise BadInput(404, "key result not found", wanted) from None
    confidence = request.confidence
    if confidence is not None and (
        isinstance(confidence, bool) or confidence not in CONFIDENCE_RANGE
    ):
        raise BadInput(422, "invalid confidence", "an integer from 1 to 10")
    if request.value is None and confidence is None:
        raise BadInput(422, "nothing to check in", "send a value, a confidence (1-10) or both")
    rule = kr.check_ins.manual_value
    if request.value is not None and not check_in_may_set_value(rule, manual_key_result=kr.manual):
        raise BadInput(
            422,
            "this key result takes its value from its source only",
            f"check_ins.manual_value is {rule.value}: send a confidence and a note, no value",
        )
    value = request.value if request.value is not None else _current_value(engine, wanted)
    objective = config.objective(kr.objective_id)
    cycle = config.cycles[objective.cycle]
    try:
        done = progress(kr.target_spec, value)
    except (ArithmeticError, DecimalException, ValueError) as exc:
        raise BadInput(422, "the value cannot be evaluated", str(exc)) from None
    note = None if request.note is None else redactor.redact(request.note)
    attempt = Attempt(wanted, value, note, request.idempotency_key, confidence)
    status = status_for(kr.kind, done, elapsed_fraction(cycle.start, cycle.end, now))
    given = None if request.value is None else str(request.value)
    provenance = ({"origin": "manual", "source": request.source, "value": given},)
    evaluation = Evaluation(value, done, status, provenance)
    item = PlannedKeyResult(kr, objective, cycle)
    mark = CheckInMark(confidence, request.author, sets_value=request.value is not None)
    return _record(engine, redactor, attempt, item, evaluation, mark, now)


def _current_value(engine: Engine, key_result_id: str) -> Decimal:
    with session_scope(engine) as session:
        row = session.get(KeyResultRow, key_result_id)
    if row is None:
        raise BadInput(404, "key result not in the store yet", key_result_id)
    if row.value is None:
        raise BadInput(422, "no value yet", "send a value with this key result's first check-in")
    return row.value


def _record(
    engine: Engine,
    redactor: Redactor,
    attempt: Attempt,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    mark: CheckInMark,
    now: datetime,
) -> CheckInOutcome:
    """The repeat ``attempt`` may be, else its record."""
    wanted, objective_id = attempt.key_result_id, item.objective.id
    with session_scope(engine) as session:
        first, request_key = first_of(session, attempt, now)
    if first is not None:
        why = "window" if attempt.idempotency_key is None else "idempotency_key"
        return _replay(engine, first, objective_id, why)
    try:
        recorded = record(
            engine,
            item,
            evaluation,
            run_id=None,
            now=now,
            redactor=redactor,
            origin="manual",
            note=attempt.note,
            request_key=request_key,
            check_in=mark,
        )
    except LookupError:
        raise BadInput(404, "key result not in the store yet", wanted) from None
    except IntegrityError:  # the same request, recorded meanwhile (by another replica)
        with session_scope(engine) as session:
            first = _recorded_for(session, attempt, request_key)
        if first is None:
            raise
        return _replay(engine, first, objective_id, "concurrent")
    log.info("manual_check_in", key_result=wanted, deliveries=recorded.deliveries)
    with session_scope(engine) as session:
        row = session.get(MeasurementRow, recorded.measurement_id)
        assert row is not None
    return CheckInOutcome(row, recorded.deliveries, False, recorded.deliveries)


def _replay(engine: Engine, row: MeasurementRow, objective_id: str, why: str) -> CheckInOutcome:
    """The first check-in's outcome again: nothing recorded, nothing queued."""
    log.info("manual_check_in_repeated", key_result=row.key_result_id, measurement=row.id, by=why)
    with session_scope(engine) as session:
        queued = _queued_with(session, row, objective_id)
    return CheckInOutcome(row, queued, True, 0)


def check_in_answer(ctx: ApiContext, outcome: CheckInOutcome) -> Response:
    """The API's answer to a check-in: 201, and ``Idempotent-Replayed`` for a repeat."""
    row = outcome.measurement
    result = m.CheckInResult(
        key_result=row.key_result_id,
        measurement=from_store.measurement(row),
        deliveries_queued=outcome.deliveries,
    )
    response = answer(ctx, result, 201)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
