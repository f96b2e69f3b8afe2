"""The JSON API under ``/api/v1``, a FastAPI router: read the OKRs, runs, deliveries and
connections; check in a value by hand; ask for a sync now.

Each route declares its typed path, query and header parameters, its response model
(:mod:`okrsync.api.models`) and its error answers; FastAPI validates the parameters and
:mod:`okrsync.api.openapi` generates the OpenAPI document from the same declarations, so the two
cannot disagree. A parameter FastAPI refuses is a 400 naming it (:data:`PARAMETER_RULES`).
Reads need the ``read`` scope (unless ``OKRSYNC_PUBLIC_READ``), check-ins ``check_in`` and an
owner's role, a sync now ``admin`` (:mod:`okrsync.api.principal`). Request bodies are read
within ``MAX_BODY`` and parsed strictly (:mod:`okrsync.api.bodies`), never by FastAPI. Every
answer is written by :func:`okrsync.api.answers.answer`, through the process's redactor.

Every list is a keyset page (``limit``, an opaque ``cursor``, ``total``, ``next_cursor``) read
with a fixed number of indexed statements (:mod:`okrsync.store.views`); the OKR reads carry an
ETag from the store's read stamp and answer a current ``If-None-Match`` with a 304. Store work
runs in worker threads (:mod:`okrsync.api.offload`), never on the event loop.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ValidationError, WithJsonSchema
from sqlalchemy import func
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from okrsync.api import check_ins
from okrsync.api import models as m
from okrsync.api.answers import CACHE_HEADERS, IF_NONE_MATCH_TEXT, answer, cached
from okrsync.api.bodies import parse_json, read_body
from okrsync.api.context import ApiContext
from okrsync.api.cursors import (
    BAD_CURSOR,
    CURSOR_SCHEMA,
    MAX_CURSOR,
    BadCursor,
    Part,
    decode_cursor,
    next_cursor,
)
from okrsync.api.errors import BadInput, context_of
from okrsync.api.offload import in_thread
from okrsync.api.principal import Scope, author_of, authorize, may_check_in, principal_of
from okrsync.domain.status import elapsed_fraction
from okrsync.engine.closeout import closed_in_store
from okrsync.engine.sync import RunReport
from okrsync.read_models import from_store
from okrsync.read_models.cycle_states import cycles_now
from okrsync.store import views
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MeasurementRow, RunRow

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
SYNC_ANSWER_WAIT = 2.0  # seconds a "sync now" waits for a quick run before answering "queued"
DEFAULT_LIMIT = 100
OBJECTIVES_LIMIT = 25  # each comes with all its key results (ten each: ~75 KB a page)
RUNS_LIMIT = 50
MAX_LIMIT = 1000

T = TypeVar("T")
DeliveryStatus = Literal["pending", "done", "failed", "superseded"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)

PARAMETER_RULES = {
    "limit": f"limit: an integer from 1 to {MAX_LIMIT}",
    "cursor": BAD_CURSOR,
    "cycle": "cycle: a cycle's id, 1 to 100 characters",
    "status": f"status: one of {DELIVERY_STATUSES}",
    "unlinked": "unlinked: true or false",
    "state": "state: one of ('todo', 'in_progress', 'done')",
}
"""What each query parameter takes: the detail of the 400 when FastAPI refuses one."""

ERROR_TEXT = {
    400: "Bad input (malformed JSON, a bad query parameter)",
    401: "No credentials, or a wrong or revoked bearer token",
    403: "The credentials lack the scope or the role; or writes are disabled (nothing to sign in)",
    404: "Not found",
    413: "Request body too large",
    422: "The body does not validate",
}

router = APIRouter(prefix=PREFIX)


# --- what a route is given ---------------------------------------------------------------------


async def api_context(request: Request) -> ApiContext:
    return context_of(request)


Context = Annotated[ApiContext, Depends(api_context)]


def _plain_digits(raw: object) -> object:
    """A limit is written in digits only: no sign, space, point or exponent."""
    if isinstance(raw, str) and not (raw.isascii() and raw.isdigit()):
        raise ValueError("an integer in digits")
    return raw


def _limit(default: int) -> Any:
    return Query(
        ge=1, le=MAX_LIMIT, description=f"At most this many on the page (default {default})."
    )


LIMIT_SCHEMA = WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})


CURSOR_TEXT = "The `next_cursor` of the previous page: this page starts after its last item."
CURSOR_QUERY = Query(min_length=1, max_length=MAX_CURSOR, description=CURSOR_TEXT)


def _cursor_schema(kind: str) -> WithJsonSchema:
    """The schema of list ``kind``'s ``cursor``: its format names the list (a client, or a test
    generating requests, can tell one list's cursors from another's)."""
    return WithJsonSchema({**CURSOR_SCHEMA, "format": f"okrsync-cursor-{kind}"})


PlainInt = BeforeValidator(_plain_digits)
Limit = Annotated[int, PlainInt, _limit(DEFAULT_LIMIT), LIMIT_SCHEMA]
ObjectivesLimit = Annotated[int, PlainInt, _limit(OBJECTIVES_LIMIT), LIMIT_SCHEMA]
RunsLimit = Annotated[int, PlainInt, _limit(RUNS_LIMIT), LIMIT_SCHEMA]
CyclesCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("cycles")]
ObjectivesCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("objectives")]
KeyResultsCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("key-results")]
MeasurementsCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("measurements")]
RunsCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("runs")]
DeliveriesCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("deliveries")]
ConnectionsCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("connections")]
ID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 100}


def _id(what: str) -> Any:
    return Path(description=f"The {what}'s id.")


ObjectiveId = Annotated[str, _id("objective"), WithJsonSchema(ID_SCHEMA)]
KeyResultId = Annotated[str, _id("key result"), WithJsonSchema(ID_SCHEMA)]
RunId = Annotated[str, _id("run"), WithJsonSchema(ID_SCHEMA)]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", description=IF_NONE_MATCH_TEXT),
    WithJsonSchema({"type": "string"}),
]


def _after(raw: str | None, kind: str, shape: tuple[Part, ...]) -> tuple[Any, ...] | None:
    try:
        return decode_cursor(raw, kind, shape)
    except BadCursor as exc:
        raise BadInput(400, "invalid query parameter", str(exc)) from None


bearer = HTTPBearer(auto_error=False, scheme_name="bearer")


async def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Every read (but the API's description) needs the ``read`` scope, or public reads."""
    if request.method in ("GET", "HEAD") and request.url.path != f"{PREFIX}/openapi.json":
        await authorize(request, Scope.READ)


async def checker_in(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A check-in needs the ``check_in`` scope (and, for a person, an owner's role)."""
    await authorize(request, Scope.CHECK_IN)


async def admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A sync now, like every admin write, needs the ``admin`` scope."""
    await authorize(request, Scope.ADMIN)


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


def request_body(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a body read by :func:`parse_body` (FastAPI never reads
    it: its schema is added to the document's components by :mod:`okrsync.api.openapi`)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": m.ErrorBody, "description": ERROR_TEXT[code]} for code in codes}


def cache_answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The answers of a cached read: with ETag and Last-Modified, a 304, and ``codes``."""
    return {
        200: {"headers": CACHE_HEADERS},
        304: {"description": "Not modified: If-None-Match is current", "headers": CACHE_HEADERS},
        **errors(*codes),
    }


def _in_memory_page(
    items: list[T], key: Callable[[T], tuple[str, ...]], limit: int, cursor: str | None, kind: str
) -> tuple[list[T], int, str | None]:
    """A page of a short list kept in the config (cycles, connections), sorted by ``key``."""
    width = len(key(items[0])) if items else 1
    after = _after(cursor, kind, (str,) * width)
    rest = items if after is None else [i for i in items if key(i) > after]
    more = len(rest) > limit
    return rest[:limit], len(items), next_cursor(kind, key(rest[limit - 1]) if more else None)


router.dependencies.append(Depends(reader))  # before any route: each route takes it when made
router.responses.update(errors(401, 403))


# --- reads -------------------------------------------------------------------------------------


@router.get(
    "/cycles",
    operation_id="listCycles",
    summary="Cycles and how far through each one is, by start",
    response_description="Cycles and how far through each one is, by start",
    response_model=m.CycleList,
    responses=errors(400),
)
async def list_cycles(
    ctx: Context,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CyclesCursor = None,
) -> Response:
    now = ctx.clock()
    closed = await in_thread(_closed_cycles, ctx)
    cycles = [
        m.Cycle(
            id=found.cycle.id,
            start=found.cycle.start,
            end=found.cycle.end,
            elapsed=str(elapsed_fraction(found.cycle.start, found.cycle.end, now)),
            state=found.state.value,
            closed_at=found.closed_at,
        )
        for found in cycles_now(ctx.config, closed, now)
    ]
    page, total, following = _in_memory_page(
        cycles, lambda c: (c.start.isoformat(), c.id), limit, cursor, "cycles"
    )
    return answer(ctx, m.CycleList(cycles=page, total=total, next_cursor=following))


def _closed_cycles(ctx: ApiContext) -> dict[str, datetime]:
    with session_scope(ctx.engine) as session:
        return closed_in_store(session)


def _objectives_answer(
    ctx: ApiContext,
    request: Request,
    condition: str | None,
    limit: int,
    after: Any,
    cycle: str | None,
) -> Response:
    def build() -> m.ObjectiveList:
        page = views.objectives_page(
            session, ctx.clock(), limit=limit, after_key=after, cycle=cycle
        )
        return m.ObjectiveList(
            objectives=[from_store.objective(v) for v in page.items],
            total=page.total,
            next_cursor=next_cursor("objectives", page.next_after),
        )

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, condition, session, build)


@router.get(
    "/objectives",
    operation_id="listObjectives",
    summary="Objectives with their key results' current state, a page at a time",
    response_description="Objectives with their key results' current state, a page at a time",
    response_model=m.ObjectiveList,
    responses=cache_answers(400),
)
async def list_objectives(
    ctx: Context,
    request: Request,
    limit: ObjectivesLimit = OBJECTIVES_LIMIT,
    cursor: ObjectivesCursor = None,
    cycle: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Only the objectives of this cycle."),
        WithJsonSchema(ID_SCHEMA),
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    after = _after(cursor, "objectives", (int, str))
    return await in_thread(_objectives_answer, ctx, request, if_none_match, limit, after, cycle)


def _objective_answer(
    ctx: ApiContext, request: Request, condition: str | None, wanted: str
) -> Response:
    def build() -> m.Objective:
        view = views.objective_view(session, ctx.clock(), wanted)
        if view is None:
            raise BadInput(404, "objective not found", wanted)
        return from_store.objective(view)

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, condition, session, build)


@router.get(
    "/objectives/{objective_id}",
    operation_id="getObjective",
    summary="One objective with its key results",
    response_description="One objective with its key results",
    response_model=m.Objective,
    responses=cache_answers(404),
)
async def get_objective(
    ctx: Context, request: Request, objective_id: ObjectiveId, if_none_match: IfNoneMatch = None
) -> Response:
    return await in_thread(_objective_answer, ctx, request, if_none_match, objective_id)


def _key_results_answer(
    ctx: ApiContext, request: Request, condition: str | None, limit: int, after: Any
) -> Response:
    def build() -> m.KeyResultList:
        page = views.key_results_page(session, ctx.clock(), limit=limit, after_key=after)
        return m.KeyResultList(
            key_results=[from_store.key_result(objective, kr) for objective, kr in page.items],
            total=page.total,
            next_cursor=next_cursor("key-results", page.next_after),
        )

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, condition, session, build)


@router.get(
    "/key-results",
    operation_id="listKeyResults",
    summary="Key results with their current state, a page at a time",
    response_description="Key results with their current state, a page at a time",
    response_model=m.KeyResultList,
    responses=cache_answers(400),
)
async def list_key_results(
    ctx: Context,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: KeyResultsCursor = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    after = _after(cursor, "key-results", (int, str, int, str))
    return await in_thread(_key_results_answer, ctx, request, if_none_match, limit, after)


def _key_result_answer(
    ctx: ApiContext, request: Request, condition: str | None, wanted: str
) -> Response:
    def build() -> m.KeyResult:
        found = views.key_result_view(session, ctx.clock(), wanted)
        if found is None:
            raise BadInput(404, "key result not found", wanted)
        return from_store.key_result(*found)

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, condition, session, build)


@router.get(
    "/key-results/{key_result_id}",
    operation_id="getKeyResult",
    summary="One key result's current state",
    response_description="One key result's current state",
    response_model=m.KeyResult,
    responses=cache_answers(404),
)
async def get_key_result(
    ctx: Context, request: Request, key_result_id: KeyResultId, if_none_match: IfNoneMatch = None
) -> Response:
    return await in_thread(_key_result_answer, ctx, request, if_none_match, key_result_id)


def _measurements_answer(ctx: ApiContext, wanted: str, limit: int, after: Any) -> Response:
    with session_scope(ctx.engine) as session:
        if views.key_result(session, wanted) is None:
            raise BadInput(404, "key result not found", wanted)
        mine = MeasurementRow.key_result_id == wanted
        total = session.exec(select(func.count()).select_from(MeasurementRow).where(mine)).one()
        order = (col(MeasurementRow.observed_at), col(MeasurementRow.id))
        query = select(MeasurementRow).where(mine)
        if after is not None:
            query = query.where(views.after(order, after, descending=True))
        rows = session.exec(query.order_by(*(c.desc() for c in order)).limit(limit + 1)).all()
        more = len(rows) > limit
        page = rows[:limit]
        following = next_cursor(
            "measurements", (page[-1].observed_at, page[-1].id) if more else None
        )
        listed = [from_store.measurement(r) for r in reversed(page)]
    return answer(
        ctx,
        m.MeasurementList(
            key_result=wanted, measurements=listed, total=int(total), next_cursor=following
        ),
    )


@router.get(
    "/key-results/{key_result_id}/measurements",
    operation_id="listMeasurements",
    summary="A key result's newest recorded values, oldest first; `next_cursor` pages back in time",
    response_description="A key result's newest recorded values, oldest first; "
    "`next_cursor` pages back in time",
    response_model=m.MeasurementList,
    responses=errors(400, 404),
)
async def list_measurements(
    ctx: Context,
    key_result_id: KeyResultId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: MeasurementsCursor = None,
) -> Response:
    after = _after(cursor, "measurements", ("when", int))
    return await in_thread(_measurements_answer, ctx, key_result_id, limit, after)


def _runs_answer(ctx: ApiContext, limit: int, after: Any) -> Response:
    with session_scope(ctx.engine) as session:
        total = session.exec(select(func.count()).select_from(RunRow)).one()
        order = (col(RunRow.started_at), col(RunRow.id))
        query = select(RunRow)
        if after is not None:
            query = query.where(views.after(order, after, descending=True))
        rows = session.exec(query.order_by(*(c.desc() for c in order)).limit(limit + 1)).all()
        more = len(rows) > limit
        runs = [from_store.run(r) for r in rows[:limit]]
        last = rows[limit - 1] if more else None
        following = None if last is None else next_cursor("runs", (last.started_at, last.id))
    return answer(ctx, m.RunList(runs=runs, total=int(total), next_cursor=following))


@router.get(
    "/runs",
    operation_id="listRuns",
    summary="Sync runs, newest first",
    response_description="Sync runs, newest first",
    response_model=m.RunList,
    responses=errors(400),
)
async def list_runs(
    ctx: Context,
    limit: RunsLimit = RUNS_LIMIT,
    cursor: RunsCursor = None,
) -> Response:
    after = _after(cursor, "runs", ("when", str))
    return await in_thread(_runs_answer, ctx, limit, after)


def _run_answer(ctx: ApiContext, wanted: str) -> Response:
    with session_scope(ctx.engine) as session:
        row = views.run(session, wanted)
        if row is None:
            raise BadInput(404, "run not found", wanted)
        return answer(ctx, from_store.run(row))


@router.get(
    "/runs/{run_id}",
    operation_id="getRun",
    summary="One sync run",
    response_description="One sync run",
    response_model=m.Run,
    responses=errors(404),
)
async def get_run(ctx: Context, run_id: RunId) -> Response:
    return await in_thread(_run_answer, ctx, run_id)


def _deliveries_answer(ctx: ApiContext, status: str | None, limit: int, after: Any) -> Response:
    """Newest first by id: (status, id) or the primary key is the index walked."""
    with session_scope(ctx.engine) as session:
        count = select(func.count()).select_from(DeliveryRow)
        query = select(DeliveryRow)
        if status is not None:
            count = count.where(DeliveryRow.status == status)
            query = query.where(DeliveryRow.status == status)
        if after is not None:
            query = query.where(col(DeliveryRow.id) < after[0])
        total = session.exec(count).one()
        rows = session.exec(query.order_by(col(DeliveryRow.id).desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        deliveries = [from_store.delivery(r) for r in rows[:limit]]
    following = next_cursor("deliveries", (deliveries[-1].id,) if more else None)
    return answer(
        ctx, m.DeliveryList(deliveries=deliveries, total=int(total), next_cursor=following)
    )


@router.get(
    "/deliveries",
    operation_id="listDeliveries",
    summary="Outbox rows (pushes to mirrors), newest first",
    response_description="Outbox rows (pushes to mirrors), newest first",
    response_model=m.DeliveryList,
    responses=errors(400),
)
async def list_deliveries(
    ctx: Context,
    limit: Limit = DEFAULT_LIMIT,
    status: Annotated[
        DeliveryStatus | None,
        Query(description="Only deliveries in this state."),
        WithJsonSchema({"type": "string", "enum": list(DELIVERY_STATUSES)}),
    ] = None,
    cursor: DeliveriesCursor = None,
) -> Response:
    after = _after(cursor, "deliveries", (int,))
    return await in_thread(_deliveries_answer, ctx, status, limit, after)


def _connection_rows(ctx: ApiContext) -> dict[str, views.ConnectionView]:
    with session_scope(ctx.engine) as session:
        return {c.name: c for c in views.connections_view(session)}


@router.get(
    "/connections",
    operation_id="listConnections",
    summary="Each connection's health, by name",
    response_description="Each connection's health, by name",
    response_model=m.ConnectionList,
    responses=errors(400),
)
async def list_connections(
    ctx: Context,
    limit: Limit = DEFAULT_LIMIT,
    cursor: ConnectionsCursor = None,
) -> Response:
    names = sorted(ctx.config.connections)
    page, total, following = _in_memory_page(names, lambda n: (n,), limit, cursor, "connections")
    rows = await in_thread(_connection_rows, ctx)
    out = [from_store.connection(n, ctx.config.connection_types[n], rows.get(n)) for n in page]
    return answer(ctx, m.ConnectionList(connections=out, total=total, next_cursor=following))


# --- writes ------------------------------------------------------------------------------------


IDEMPOTENCY_TEXT = (
    "Names this check-in: sent again with the same key (a retry), it records nothing and is "
    "answered as the first time (with `Idempotent-Replayed: true`); the same key with another "
    "value or note is a 422. Without it, the same value and note as the key result's latest "
    f"check-in, within {check_ins.REPEAT_WINDOW.total_seconds() / 60:g} minutes of it, is a "
    "repeat too."
)


async def idempotency_key(
    request: Request,
    given: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description=IDEMPOTENCY_TEXT),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[!-~]+$"}),
    ] = None,
) -> str | None:
    """Every ``Idempotency-Key`` header sent is looked at: two are refused, as a bad one is."""
    return check_ins.idempotency_key_of(request.headers.getlist("idempotency-key"))


async def check_in_body(request: Request) -> m.CheckIn:
    body: m.CheckIn = await parse_body(request, m.CheckIn, required=True)
    return body


async def sync_body(request: Request) -> m.SyncRequest:
    body: m.SyncRequest = await parse_body(request, m.SyncRequest, required=False)
    return body


@router.post(
    "/key-results/{key_result_id}/check-ins",
    operation_id="checkIn",
    summary="Record a value by hand (origin manual); mirrors are queued as for any change",
    response_description="Record a value by hand (origin manual); mirrors are queued as for "
    "any change",
    response_model=m.CheckInResult,
    status_code=201,
    responses=errors(400, 401, 403, 404, 413, 422),
    dependencies=[Depends(checker_in)],
    openapi_extra=request_body(m.CheckIn, required=True),
)
async def check_in(
    ctx: Context,
    incoming: Request,
    key_result_id: KeyResultId,
    key: Annotated[str | None, Depends(idempotency_key)],
    body: Annotated[m.CheckIn, Depends(check_in_body)],
) -> Response:
    who = principal_of(incoming)  # the one checker_in found, kept on the request
    assert who is not None
    try:
        objective = ctx.config.objective(ctx.config.key_result(key_result_id).objective_id)
    except KeyError:
        objective = None  # check_ins.check_in answers the 404
    if objective is not None and not may_check_in(who, objective.owner):
        raise BadInput(403, "not an owner", f"only {objective.owner or 'an admin'} checks in here")
    request = check_ins.CheckInRequest(
        key_result_id,
        value=body.value,
        confidence=body.confidence,
        note=body.note,
        author=author_of(who, check_ins.API_AUTHOR),
        idempotency_key=key,
    )
    outcome = await in_thread(
        check_ins.check_in, ctx.engine, ctx.config, ctx.redactor, request, ctx.clock()
    )
    if ctx.daemon is not None and outcome.queued_now:
        ctx.daemon.nudge()  # deliver the new outbox rows now rather than at the next wake-up
    return check_ins.check_in_answer(ctx, outcome)


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


@router.post(
    "/sync",
    operation_id="syncNow",
    summary="Run a sync pass now (all or some key results)",
    response_description="Run a sync pass now (all or some key results)",
    response_model=m.SyncAccepted,
    status_code=202,
    responses=errors(400, 401, 403, 404, 413, 422),
    dependencies=[Depends(admin)],
    openapi_extra=request_body(m.SyncRequest, required=False),
)
async def sync_now(ctx: Context, body: Annotated[m.SyncRequest, Depends(sync_body)]) -> Response:
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


@router.get("/openapi.json", include_in_schema=False)
async def openapi_json() -> Response:
    from okrsync.api.openapi import openapi_document

    return JSONResponse(openapi_document())


from okrsync.api import work_routes  # noqa: E402, F401 - adds the work routes to `router`


def _answer_head_too() -> None:
    """Every read answers HEAD as well, as a Starlette ``Route`` for GET does (FastAPI's routes
    take only the methods they name); :mod:`okrsync.api.openapi` documents the GETs alone."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.methods is not None and "GET" in route.methods:
            route.methods.add("HEAD")


_answer_head_too()
