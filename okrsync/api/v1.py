"""The JSON API under ``/api/v1``: read the OKRs, runs, deliveries and connections; check in a
value by hand; ask for a sync now.

Every operation is declared once in :data:`OPERATIONS` (path, models, parameters); the routes and
the OpenAPI document (:mod:`okrsync.api.openapi`) are both built from that table, so they cannot
disagree. Reads are open; writes need the bearer token (:mod:`okrsync.api.auth`). Every answer
passes through the process's :class:`~okrsync.redaction.Redactor`.

Every list is a keyset page (``limit``, an opaque ``cursor``, ``total``, ``next_cursor``) read
with a fixed number of indexed statements (:mod:`okrsync.store.views`); the OKR reads carry an
ETag from the store's read stamp and answer a current ``If-None-Match`` with a 304. Store work
runs in worker threads (:mod:`okrsync.api.offload`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, DecimalException
from email.utils import format_datetime
from typing import Any, TypeVar

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
from okrsync.api.offload import in_thread
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
OBJECTIVES_LIMIT = 25  # each comes with all its key results (ten each: ~75 KB a page)
MAX_LIMIT = 1000

Handler = Callable[[ApiContext, Request], Awaitable[Response]]
T = TypeVar("T")


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
    cached: bool = False  # answers carry an ETag; a current If-None-Match gets a 304


class BadInput(BadBody):
    """A request refused with a 4xx (so is a :class:`BadBody`): the handler's answer."""


def _json(value: Any) -> str:
    """As :class:`~starlette.responses.JSONResponse` writes JSON."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


def answer(ctx: ApiContext, model: BaseModel, status: int = 200) -> Response:
    """``model`` as JSON, redacted, byte for byte what ``JSONResponse`` makes of it, but written
    a piece at a time: each item of a list on its own. A page is built in a worker thread, and
    one ``json.dumps`` (or ``model_dump``) of a page of thousands of items holds the interpreter
    lock, and so the event loop, for its whole length; between items the loop gets its turn."""
    redact = ctx.redactor.redact_value
    parts = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            text = "[" + ",".join(_json(redact(v.model_dump(mode="json"))) for v in value) + "]"
        else:
            text = _json(redact(model.model_dump(mode="json", include={name})[name]))
        parts.append(f"{_json(name)}:{text}")
    body = ("{" + ",".join(parts) + "}").encode()
    return Response(body, status, media_type="application/json")


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


# --- pages and caching -------------------------------------------------------------------------

BAD_CURSOR = "cursor: not one this list gave (send back `next_cursor` unchanged)"
MAX_CURSOR = 1000
CURSOR_PARAM_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR}
# sort-key parts a cursor may hold: JSON ints and strings; "when" is an ISO datetime string
Part = type[int] | type[str] | str


def encode_cursor(kind: str, key: tuple[Any, ...]) -> str:
    """The opaque ``next_cursor``: the list's name and its last item's sort key, as URL-safe
    base64 of JSON (datetimes as ISO text). Not signed: a forged one only picks a start."""
    parts = [kind, *(v.isoformat() if isinstance(v, datetime) else v for v in key)]
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_of(request: Request, kind: str, shape: tuple[Part, ...]) -> tuple[Any, ...] | None:
    """The sort key in the request's ``cursor``, checked against the list's ``shape``; a 400 for
    anything this list did not give."""
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > MAX_CURSOR or not raw.isascii():
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(data, list) or len(data) != len(shape) + 1 or data[0] != kind:
            raise ValueError
        key: list[Any] = []
        for want, value in zip(shape, data[1:], strict=True):
            if want == "when":
                when = datetime.fromisoformat(value) if isinstance(value, str) else None
                if when is None or when.tzinfo is None:
                    raise ValueError
                key.append(when.astimezone(UTC))  # OverflowError at the ends of time
            elif type(value) is not want:  # bool is not an int here
                raise ValueError
            elif isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError  # no store column holds it
            elif isinstance(value, str) and ("\x00" in value or not _encodable(value)):
                raise ValueError  # PostgreSQL text holds no NUL, nor a lone surrogate
            else:
                key.append(value)
    except (ValueError, TypeError, binascii.Error, OverflowError, RecursionError):
        raise BadInput(400, "invalid query parameter", BAD_CURSOR) from None
    return tuple(key)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _next(kind: str, key: tuple[Any, ...] | None) -> str | None:
    return None if key is None else encode_cursor(kind, key)


CACHE_SECONDS = 60
"""The ETag of an OKR read digests the store's read stamp and the current minute: status, pace
and staleness are computed against the clock, so an answer is reused for at most this long past
the minute it was made in, and never past a recorded change."""


def _etag(request: Request, stamp: views.ReadStamp, now: datetime) -> str:
    minute = int(now.timestamp()) // CACHE_SECONDS
    query = sorted(request.query_params.multi_items())
    text = json.dumps([request.url.path, query, stamp.parts(), minute])
    return f'W/"{hashlib.sha256(text.encode()).hexdigest()[:32]}"'


def _matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` compared weakly (RFC 9110 §13.1.2): ``*`` or any listed tag."""
    if header is None:
        return False
    opaque = etag.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


def cached(
    ctx: ApiContext, request: Request, session: Session, build: Callable[[], BaseModel]
) -> Response:
    """``build()``'s answer with an ETag and Last-Modified from the store's read stamp (one
    statement), or a 304 without building it when the client's ``If-None-Match`` is current."""
    now = ctx.clock()
    stamp = views.read_stamp(session)
    headers = {"ETag": _etag(request, stamp, now), "Cache-Control": "no-cache"}
    changed = stamp.last_change()
    if changed is not None:
        headers["Last-Modified"] = format_datetime(changed, usegmt=True)
    condition = request.headers.get("if-none-match")
    if _matches(condition, headers["ETag"]):
        if condition is not None and "*" in (t.strip() for t in condition.split(",")):
            build()  # "*" matches only what exists: a missing one is still a 404
        return Response(status_code=304, headers=headers)
    response = answer(ctx, build())
    response.headers.update(headers)
    return response


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


def _in_memory_page(
    items: list[T], key: Callable[[T], tuple[str, ...]], request: Request, kind: str
) -> tuple[list[T], int, str | None]:
    """A page of a short list kept in the config (cycles, connections), sorted by ``key``."""
    limit = limit_of(request)
    width = len(key(items[0])) if items else 1
    after = cursor_of(request, kind, (str,) * width)
    rest = items if after is None else [i for i in items if key(i) > after]
    more = len(rest) > limit
    return rest[:limit], len(items), _next(kind, key(rest[limit - 1]) if more else None)


# --- reads -------------------------------------------------------------------------------------


async def list_cycles(ctx: ApiContext, request: Request) -> Response:
    now = ctx.clock()
    cycles = [
        m.Cycle(
            id=c.id, start=c.start, end=c.end, elapsed=str(elapsed_fraction(c.start, c.end, now))
        )
        for c in sorted(ctx.config.cycles.values(), key=lambda c: (c.start, c.id))
    ]
    page, total, cursor = _in_memory_page(
        cycles, lambda c: (c.start.isoformat(), c.id), request, "cycles"
    )
    return answer(ctx, m.CycleList(cycles=page, total=total, next_cursor=cursor))


def _objectives_answer(
    ctx: ApiContext, request: Request, limit: int, after: Any, cycle: str | None
) -> Response:
    def build() -> m.ObjectiveList:
        page = views.objectives_page(
            session, ctx.clock(), limit=limit, after_key=after, cycle=cycle
        )
        return m.ObjectiveList(
            objectives=[_objective(v) for v in page.items],
            total=page.total,
            next_cursor=_next("objectives", page.next_after),
        )

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, session, build)


async def list_objectives(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request, OBJECTIVES_LIMIT)
    after = cursor_of(request, "objectives", (int, str))
    cycle = request.query_params.get("cycle")
    if cycle is not None and not 1 <= len(cycle) <= 100:
        raise BadInput(400, "invalid query parameter", "cycle: a cycle's id, 1 to 100 characters")
    return await in_thread(_objectives_answer, ctx, request, limit, after, cycle)


def _objective_answer(ctx: ApiContext, request: Request, wanted: str) -> Response:
    def build() -> m.Objective:
        view = views.objective_view(session, ctx.clock(), wanted)
        if view is None:
            raise BadInput(404, "objective not found", wanted)
        return _objective(view)

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, session, build)


async def get_objective(ctx: ApiContext, request: Request) -> Response:
    return await in_thread(_objective_answer, ctx, request, request.path_params["objective_id"])


def _key_results_answer(ctx: ApiContext, request: Request, limit: int, after: Any) -> Response:
    def build() -> m.KeyResultList:
        page = views.key_results_page(session, ctx.clock(), limit=limit, after_key=after)
        return m.KeyResultList(
            key_results=[_key_result(objective, kr) for objective, kr in page.items],
            total=page.total,
            next_cursor=_next("key-results", page.next_after),
        )

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, session, build)


async def list_key_results(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request)
    after = cursor_of(request, "key-results", (int, str, int, str))
    return await in_thread(_key_results_answer, ctx, request, limit, after)


def _key_result_answer(ctx: ApiContext, request: Request, wanted: str) -> Response:
    def build() -> m.KeyResult:
        found = views.key_result_view(session, ctx.clock(), wanted)
        if found is None:
            raise BadInput(404, "key result not found", wanted)
        return _key_result(*found)

    with session_scope(ctx.engine) as session:
        return cached(ctx, request, session, build)


async def get_key_result(ctx: ApiContext, request: Request) -> Response:
    return await in_thread(_key_result_answer, ctx, request, request.path_params["key_result_id"])


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
        cursor = _next("measurements", (page[-1].observed_at, page[-1].id) if more else None)
        listed = [_measurement(r) for r in reversed(page)]
    return answer(
        ctx,
        m.MeasurementList(
            key_result=wanted, measurements=listed, total=int(total), next_cursor=cursor
        ),
    )


async def list_measurements(ctx: ApiContext, request: Request) -> Response:
    wanted = request.path_params["key_result_id"]
    limit = limit_of(request)
    after = cursor_of(request, "measurements", ("when", int))
    return await in_thread(_measurements_answer, ctx, wanted, limit, after)


def _runs_answer(ctx: ApiContext, limit: int, after: Any) -> Response:
    with session_scope(ctx.engine) as session:
        total = session.exec(select(func.count()).select_from(RunRow)).one()
        order = (col(RunRow.started_at), col(RunRow.id))
        query = select(RunRow)
        if after is not None:
            query = query.where(views.after(order, after, descending=True))
        rows = session.exec(query.order_by(*(c.desc() for c in order)).limit(limit + 1)).all()
        more = len(rows) > limit
        runs = [_run(r) for r in rows[:limit]]
        last = rows[limit - 1] if more else None
        cursor = None if last is None else _next("runs", (last.started_at, last.id))
    return answer(ctx, m.RunList(runs=runs, total=int(total), next_cursor=cursor))


async def list_runs(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request, 50)
    after = cursor_of(request, "runs", ("when", str))
    return await in_thread(_runs_answer, ctx, limit, after)


def _run_answer(ctx: ApiContext, wanted: str) -> Response:
    with session_scope(ctx.engine) as session:
        row = views.run(session, wanted)
        if row is None:
            raise BadInput(404, "run not found", wanted)
        return answer(ctx, _run(row))


async def get_run(ctx: ApiContext, request: Request) -> Response:
    return await in_thread(_run_answer, ctx, request.path_params["run_id"])


DELIVERY_STATUSES = ("pending", "done", "failed", "superseded")


def _delivery(r: DeliveryRow) -> m.Delivery:
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
        deliveries = [_delivery(r) for r in rows[:limit]]
    cursor = _next("deliveries", (deliveries[-1].id,) if more else None)
    return answer(ctx, m.DeliveryList(deliveries=deliveries, total=int(total), next_cursor=cursor))


async def list_deliveries(ctx: ApiContext, request: Request) -> Response:
    limit = limit_of(request)
    status = request.query_params.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadInput(400, "invalid query parameter", f"status: one of {DELIVERY_STATUSES}")
    after = cursor_of(request, "deliveries", (int,))
    return await in_thread(_deliveries_answer, ctx, status, limit, after)


def _connection_rows(ctx: ApiContext) -> dict[str, views.ConnectionView]:
    with session_scope(ctx.engine) as session:
        return {c.name: c for c in views.connections_view(session)}


async def list_connections(ctx: ApiContext, request: Request) -> Response:
    names = sorted(ctx.config.connections)
    page, total, cursor = _in_memory_page(names, lambda n: (n,), request, "connections")
    rows = await in_thread(_connection_rows, ctx)
    out = []
    for name in page:
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
    return answer(ctx, m.ConnectionList(connections=out, total=total, next_cursor=cursor))


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
    status = status_for(kr.kind, done, elapsed_fraction(cycle.start, cycle.end, now))
    provenance = ({"origin": "manual", "source": "api", "value": str(body.value)},)
    evaluation = Evaluation(body.value, done, status, provenance)
    item = PlannedKeyResult(kr, objective, cycle)
    response, queued = await in_thread(_record_check_in, ctx, attempt, item, evaluation, now)
    if ctx.daemon is not None and queued:
        ctx.daemon.nudge()  # deliver the new outbox rows now rather than at the next wake-up
    return response


def _record_check_in(
    ctx: ApiContext,
    attempt: _Attempt,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    now: datetime,
) -> tuple[Response, int]:
    """The store side of a check-in, in a worker thread: the repeat it may be, else the record;
    the answer, and how many deliveries it queued (0 for a repeat)."""
    wanted, objective_id = attempt.key_result_id, item.objective.id
    with session_scope(ctx.engine) as session:
        first, request_key = _first_of(session, attempt, now)
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


def _limit(default: int) -> Param:
    return Param(
        "limit",
        "query",
        f"At most this many on the page (default {default}).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    )


def _cursor(kind: str) -> Param:
    """The ``cursor`` parameter of list ``kind``; its format names the list (a client, or a
    test generating requests, can tell one list's cursors from another's)."""
    return Param(
        "cursor",
        "query",
        "The `next_cursor` of the previous page: this page starts after its last item.",
        {**CURSOR_PARAM_SCHEMA, "format": f"okrsync-cursor-{kind}"},
    )


LIMIT = _limit(DEFAULT_LIMIT)


def _page_params(kind: str) -> tuple[Param, Param]:
    return LIMIT, _cursor(kind)


IF_NONE_MATCH = Param(
    "If-None-Match",
    "header",
    "The `ETag` of an earlier answer: when nothing was recorded since (and within the minute, "
    "as status follows the clock), the answer is a 304 with no body.",
    {"type": "string"},
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
        "Cycles and how far through each one is, by start",
        list_cycles,
        m.CycleList,
        params=_page_params("cycles"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/objectives",
        "listObjectives",
        "Objectives with their key results' current state, a page at a time",
        list_objectives,
        m.ObjectiveList,
        params=(
            _limit(OBJECTIVES_LIMIT),
            _cursor("objectives"),
            Param("cycle", "query", "Only the objectives of this cycle.", ID_SCHEMA),
        ),
        errors=(400,),
        cached=True,
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
        cached=True,
    ),
    Operation(
        "GET",
        "/key-results",
        "listKeyResults",
        "Key results with their current state, a page at a time",
        list_key_results,
        m.KeyResultList,
        params=_page_params("key-results"),
        errors=(400,),
        cached=True,
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
        cached=True,
    ),
    Operation(
        "GET",
        "/key-results/{key_result_id}/measurements",
        "listMeasurements",
        "A key result's newest recorded values, oldest first; `next_cursor` pages back in time",
        list_measurements,
        m.MeasurementList,
        params=(_id("key_result_id", "key result"), *_page_params("measurements")),
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
        params=(_limit(50), _cursor("runs")),
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
            *_page_params("deliveries"),
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
        "Each connection's health, by name",
        list_connections,
        m.ConnectionList,
        params=_page_params("connections"),
        errors=(400,),
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
