"""The JSON API under ``/api/v1``: read the OKRs, runs, deliveries and connections; check in a
value by hand; ask for a sync now.

Every operation is declared once in :data:`OPERATIONS` (path, models, parameters); the routes and
the OpenAPI document (:mod:`okrsync.api.openapi`) are both built from that table, so they cannot
disagree. Reads are open; writes need the bearer token (:mod:`okrsync.api.auth`). Every answer
passes through the process's :class:`~okrsync.redaction.Redactor`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, DecimalException
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync.api import models as m
from okrsync.api.auth import refuse_write
from okrsync.api.bodies import BadBody, parse_json, read_body
from okrsync.api.context import ApiContext, error_response
from okrsync.engine.evaluate import Evaluation
from okrsync.engine.planner import PlannedKeyResult
from okrsync.engine.progress import progress
from okrsync.engine.recorder import record
from okrsync.engine.status import elapsed_fraction, status_for
from okrsync.engine.sync import RunReport
from okrsync.store import views
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MeasurementRow, RunRow

log = structlog.get_logger()

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
SYNC_ANSWER_WAIT = 2.0  # seconds a "sync now" waits for a quick run before answering "queued"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Handler = Callable[[ApiContext, Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # path | query | header
    description: str
    schema: dict[str, Any]
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below PREFIX
    operation_id: str
    summary: str
    handler: Handler
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    write: bool = False
    errors: tuple[int, ...] = ()


class BadInput(BadBody):
    """A request refused with a 4xx (so is a :class:`BadBody`): the handler's answer."""


def answer(ctx: ApiContext, model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(ctx.redactor.redact_value(model.model_dump(mode="json")), status)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def limit_of(request: Request, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadInput(400, "invalid query parameter", f"limit: an integer from 1 to {MAX_LIMIT}")
    return int(raw)


async def parse_body(request: Request, model: type[BaseModel], *, required: bool) -> Any:
    """The request's JSON body as ``model``: read within ``MAX_BODY`` as it streams in, then
    parsed strictly (:mod:`okrsync.api.bodies`), then validated; every refusal a 4xx."""
    raw = await read_body(request, MAX_BODY)
    if not raw.strip():
        if required:
            raise BadInput(400, "request body required", "send a JSON object")
        raw = b"{}"
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise BadInput(422, "invalid request body", detail) from None


# --- reads -------------------------------------------------------------------------------------


def _key_result(objective: str, kr: views.KeyResultView) -> m.KeyResult:
    return m.KeyResult(
        id=kr.id,
        objective=objective,
        title=kr.title,
        kind=kr.kind,
        unit=kr.unit,
        value=_dec(kr.value),
        start=_dec(kr.start),
        target=_dec(kr.target),
        progress=_dec(kr.progress),
        status=kr.status,
        stale=kr.stale,
        observed_at=kr.observed_at,
        checked_at=kr.checked_at,
        last_error=kr.last_error,
    )


def _objective(view: views.ObjectiveView) -> m.Objective:
    return m.Objective(
        id=view.id,
        title=view.title,
        cycle=view.cycle,
        owner=view.owner,
        progress=_dec(view.progress),
        status=view.status,
        elapsed=str(view.elapsed),
        key_results=[_key_result(view.id, kr) for kr in view.key_results],
    )


def _objectives(ctx: ApiContext) -> list[m.Objective]:
    with session_scope(ctx.engine) as session:
        return [_objective(v) for v in views.status_view(session, ctx.clock())]


def _measurement(row: MeasurementRow) -> m.Measurement:
    return m.Measurement(
        id=row.id,
        value=_dec(row.value),
        progress=_dec(row.progress),
        status=row.status,
        observed_at=row.observed_at,
        run_id=row.run_id,
        origin=row.origin,
        note=row.note,
        provenance=list(row.provenance or []),
    )


def _run(row: RunRow) -> m.Run:
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


async def list_cycles(ctx: ApiContext, request: Request) -> Response:
    now = ctx.clock()
    cycles = [
        m.Cycle(
            id=c.id, start=c.start, end=c.end, elapsed=str(elapsed_fraction(c.start, c.end, now))
        )
        for c in sorted(ctx.config.cycles.values(), key=lambda c: (c.start, c.id))
    ]
    return answer(ctx, m.CycleList(cycles=cycles))


async def list_objectives(ctx: ApiContext, request: Request) -> Response:
    return answer(ctx, m.ObjectiveList(objectives=_objectives(ctx)))


async def get_objective(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["objective_id"]
    for objective in _objectives(ctx):
        if objective.id == wanted:
            return answer(ctx, objective)
    raise BadInput(404, "objective not found", wanted)


async def list_key_results(ctx: ApiContext, request: Request) -> Response:
    krs = [kr for o in _objectives(ctx) for kr in o.key_results]
    return answer(ctx, m.KeyResultList(key_results=krs))


async def get_key_result(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["key_result_id"]
    for objective in _objectives(ctx):
        for kr in objective.key_results:
            if kr.id == wanted:
                return answer(ctx, kr)
    raise BadInput(404, "key result not found", wanted)


async def list_measurements(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["key_result_id"]
    limit = limit_of(request)
    with session_scope(ctx.engine) as session:
        if views.key_result(session, wanted) is None:
            raise BadInput(404, "key result not found", wanted)
        rows = [_measurement(r) for r in views.history(session, wanted, limit)]
    return answer(ctx, m.MeasurementList(key_result=wanted, measurements=rows))


async def list_runs(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request, 50)
    with session_scope(ctx.engine) as session:
        rows = session.exec(
            select(RunRow)
            .order_by(col(RunRow.started_at).desc(), col(RunRow.id).desc())
            .limit(limit)
        ).all()
        runs = [_run(r) for r in rows]
    return answer(ctx, m.RunList(runs=runs))


async def get_run(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["run_id"]
    with session_scope(ctx.engine) as session:
        row = views.run(session, wanted)
        if row is None:
            raise BadInput(404, "run not found", wanted)
        return answer(ctx, _run(row))


DELIVERY_STATUSES = ("pending", "done", "failed", "superseded")


def _deliveries(session: Session, status: str | None, limit: int) -> list[m.Delivery]:
    query = select(DeliveryRow)
    if status is not None:
        query = query.where(DeliveryRow.status == status)
    rows = session.exec(query.order_by(col(DeliveryRow.id).desc()).limit(limit)).all()
    return [
        m.Delivery(
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
        for r in rows
    ]


async def list_deliveries(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request)
    status = request.query_params.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadInput(400, "invalid query parameter", f"status: one of {DELIVERY_STATUSES}")
    with session_scope(ctx.engine) as session:
        deliveries = _deliveries(session, status, limit)
    return answer(ctx, m.DeliveryList(deliveries=deliveries))


async def list_connections(ctx: ApiContext, request: Request) -> Response:
    with session_scope(ctx.engine) as session:
        rows = {c.name: c for c in views.connections_view(session)}
    out = []
    for name in sorted(ctx.config.connections):
        row = rows.get(name)
        out.append(
            m.Connection(
                name=name,
                type=ctx.config.connection_types[name],
                status=row.status if row else "unknown",
                consecutive_failures=row.consecutive_failures if row else 0,
                last_ok_at=row.last_ok_at if row else None,
                last_error_at=row.last_error_at if row else None,
                last_error=row.last_error if row else None,
                paused_until=row.paused_until if row else None,
            )
        )
    return answer(ctx, m.ConnectionList(connections=out))


# --- writes ------------------------------------------------------------------------------------


REPEAT_WINDOW = timedelta(minutes=5)
"""Without an ``Idempotency-Key``, a check-in with the value and note of its key result's latest
manual measurement, made less than this long ago, is that one sent again (a double click, a
client retrying after a timeout it took for a failure) and records nothing. Long enough for a
client's retries; short enough that the same number reported at the next meeting is heard."""

IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,100}")  # visible ASCII: what a header carries unchanged


@dataclass(frozen=True)
class _Attempt:
    """A check-in as it would be stored, and the ``Idempotency-Key`` it came with."""

    key_result_id: str
    value: Decimal
    note: str | None  # redacted, as stored
    idempotency_key: str | None

    def same_as(self, row: MeasurementRow) -> bool:
        return row.value == self.value and row.note == self.note


def _idempotency_key(request: Request) -> str | None:
    given = request.headers.getlist("idempotency-key")
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


def _recorded_for(session: Session, attempt: _Attempt, request_key: str) -> MeasurementRow | None:
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


def _first_of(
    session: Session, attempt: _Attempt, now: datetime
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
        key_result=row.key_result_id, measurement=_measurement(row), deliveries_queued=deliveries
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


async def check_in(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["key_result_id"]
    idempotency_key = _idempotency_key(request)
    body: m.CheckIn = await parse_body(request, m.CheckIn, required=True)
    try:
        kr = ctx.config.key_result(wanted)
    except KeyError:
        raise BadInput(404, "key result not found", wanted) from None
    objective = ctx.config.objective(kr.objective_id)
    cycle = ctx.config.cycles[objective.cycle]
    now = ctx.clock()
    try:
        done = progress(kr.target_spec, body.value)
    except (ArithmeticError, DecimalException, ValueError) as exc:
        raise BadInput(422, "the value cannot be evaluated", str(exc)) from None
    note = None if body.note is None else ctx.redactor.redact(body.note)
    attempt = _Attempt(wanted, body.value, note, idempotency_key)
    with session_scope(ctx.engine) as session:
        first, request_key = _first_of(session, attempt, now)
    if first is not None:
        why = "window" if idempotency_key is None else "idempotency_key"
        return _replay(ctx, first, objective.id, why)
    status = status_for(kr.kind, done, elapsed_fraction(cycle.start, cycle.end, now))
    provenance = ({"origin": "manual", "source": "api", "value": str(body.value)},)
    evaluation = Evaluation(body.value, done, status, provenance)
    item = PlannedKeyResult(kr, objective, cycle)
    try:
        recorded = record(
            ctx.engine,
            item,
            evaluation,
            run_id=None,
            now=now,
            redactor=ctx.redactor,
            origin="manual",
            note=note,
            request_key=request_key,
        )
    except LookupError:
        raise BadInput(404, "key result not in the store yet", wanted) from None
    except IntegrityError:  # the same request, recorded meanwhile (by another replica)
        with session_scope(ctx.engine) as session:
            first = _recorded_for(session, attempt, request_key)
        if first is None:
            raise
        return _replay(ctx, first, objective.id, "concurrent")
    log.info("manual_check_in", key_result=wanted, deliveries=recorded.deliveries)
    if ctx.daemon is not None and recorded.deliveries:
        ctx.daemon.nudge()  # deliver the new outbox rows now rather than at the next wake-up
    with session_scope(ctx.engine) as session:
        row = session.get(MeasurementRow, recorded.measurement_id)
        assert row is not None
    return _check_in_answer(ctx, row, recorded.deliveries, replayed=False)


def _summary(report: RunReport, key_results: list[str] | None) -> m.SyncAccepted:
    return m.SyncAccepted(
        status="finished",
        run_id=report.run_id,
        key_results=key_results,
        queries=report.queries,
        api_calls=report.api_calls,
        changed=report.changed,
        delivered=report.dispatch.delivered,
        errors=report.errors + report.dispatch.errors,
    )


async def sync_now(ctx: ApiContext, request: Request) -> Response:
    body: m.SyncRequest = await parse_body(request, m.SyncRequest, required=False)
    wanted = body.key_results
    if wanted is not None:
        known = {kr.id for kr in ctx.config.key_results()}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise BadInput(404, "key result not found", unknown)
    future = ctx.request_run(key_results=wanted, trigger="api")
    done, _ = await asyncio.wait({future}, timeout=SYNC_ANSWER_WAIT)  # never cancels the run
    if not done:
        return answer(ctx, m.SyncAccepted(status="queued", run_id=None, key_results=wanted), 202)
    if future.cancelled() or future.exception() is not None:
        error = "cancelled" if future.cancelled() else str(future.exception())
        failed = m.SyncAccepted(status="failed", run_id=None, key_results=wanted, errors=[error])
        return answer(ctx, failed, 202)
    return answer(ctx, _summary(future.result(), wanted), 202)


# --- the table ---------------------------------------------------------------------------------

LIMIT = Param(
    "limit",
    "query",
    "At most this many, newest first.",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
)
ID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 100}


IDEMPOTENCY_PARAM = Param(
    "Idempotency-Key",
    "header",
    "Names this check-in: sent again with the same key (a retry), it records nothing and is "
    "answered as the first time (with `Idempotent-Replayed: true`); the same key with another "
    "value or note is a 422. Without it, the same value and note as the key result's latest "
    f"check-in, within {REPEAT_WINDOW.total_seconds() / 60:g} minutes of it, is a repeat too.",
    {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[!-~]+$"},
)


def _id(name: str, what: str) -> Param:
    return Param(name, "path", f"The {what}'s id.", ID_SCHEMA, required=True)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/cycles",
        "listCycles",
        "Cycles and how far through each one is",
        list_cycles,
        m.CycleList,
    ),
    Operation(
        "GET",
        "/objectives",
        "listObjectives",
        "Objectives with their key results' current state",
        list_objectives,
        m.ObjectiveList,
    ),
    Operation(
        "GET",
        "/objectives/{objective_id}",
        "getObjective",
        "One objective with its key results",
        get_objective,
        m.Objective,
        params=(_id("objective_id", "objective"),),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/key-results",
        "listKeyResults",
        "Every key result with its current state",
        list_key_results,
        m.KeyResultList,
    ),
    Operation(
        "GET",
        "/key-results/{key_result_id}",
        "getKeyResult",
        "One key result's current state",
        get_key_result,
        m.KeyResult,
        params=(_id("key_result_id", "key result"),),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/key-results/{key_result_id}/measurements",
        "listMeasurements",
        "A key result's recorded values, oldest first",
        list_measurements,
        m.MeasurementList,
        params=(_id("key_result_id", "key result"), LIMIT),
        errors=(400, 404),
    ),
    Operation(
        "POST",
        "/key-results/{key_result_id}/check-ins",
        "checkIn",
        "Record a value by hand (origin manual); mirrors are queued as for any change",
        check_in,
        m.CheckInResult,
        status=201,
        body=m.CheckIn,
        params=(_id("key_result_id", "key result"), IDEMPOTENCY_PARAM),
        write=True,
        errors=(400, 404, 413, 422),
    ),
    Operation(
        "GET",
        "/runs",
        "listRuns",
        "Sync runs, newest first",
        list_runs,
        m.RunList,
        params=(LIMIT,),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/runs/{run_id}",
        "getRun",
        "One sync run",
        get_run,
        m.Run,
        params=(_id("run_id", "run"),),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/deliveries",
        "listDeliveries",
        "Outbox rows (pushes to mirrors), newest first",
        list_deliveries,
        m.DeliveryList,
        params=(
            LIMIT,
            Param(
                "status",
                "query",
                "Only deliveries in this state.",
                {"type": "string", "enum": list(DELIVERY_STATUSES)},
            ),
        ),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/connections",
        "listConnections",
        "Each connection's health",
        list_connections,
        m.ConnectionList,
    ),
    Operation(
        "POST",
        "/sync",
        "syncNow",
        "Run a sync pass now (all or some key results)",
        sync_now,
        m.SyncAccepted,
        status=202,
        body=m.SyncRequest,
        body_required=False,
        write=True,
        errors=(400, 404, 413, 422),
    ),
)


def _endpoint(ctx: ApiContext, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if op.write:
            refused = refuse_write(request, ctx.settings.api_token)
            if refused is not None:
                return refused
        try:
            return await op.handler(ctx, request)
        except BadBody as exc:  # BadInput too
            detail = ctx.redactor.redact_value(exc.detail)
            return error_response(exc.status, exc.error, detail, exc.headers)

    return endpoint


def v1_routes(ctx: ApiContext) -> list[BaseRoute]:
    from okrsync.api.openapi import openapi_document

    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes: list[BaseRoute] = [Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"])]
    routes += [
        Route(PREFIX + op.path, _endpoint(ctx, op), methods=[op.method], name=op.operation_id)
        for op in OPERATIONS
    ]
    return routes
