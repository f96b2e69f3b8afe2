"""Read models over the store for ``status``, ``history`` and ``explain`` (and later the API).

Status is recomputed at read time from the stored progress and the current clock: pace against the
cycle changes as days pass even when the value does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, func, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from okrsync.domain.grading import WeightedScore, objective_score
from okrsync.domain.progress import KRKind
from okrsync.domain.status import Weighted, elapsed_fraction, objective_status, rollup, status_for
from okrsync.domain.statuses import DeliveryStatus
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
    confidence: int | None = None  # the latest check-in's, 1 to 10
    score: Decimal | None = None  # 0 to 1, okrsync.domain.grading
    weight: Decimal = Decimal(1)  # for the objective's score
    decimals: int | None = None  # digits people read; None: the unit's (okrsync.domain.numbers)


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
    score: Decimal | None = None  # weighted mean of all its key results' scores


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


class Confirmed(Protocol):
    """What staleness reads of a key result: an ORM row, or the recorder's plain state."""

    @property
    def stale_after_seconds(self) -> int | None: ...

    @property
    def checked_at(self) -> datetime | None: ...

    @property
    def observed_at(self) -> datetime | None: ...


def is_stale(row: Confirmed, now: datetime) -> bool:
    if row.stale_after_seconds is None:
        return False
    seen = row.checked_at or row.observed_at
    return seen is None or now > stale_deadline(seen, row.stale_after_seconds)


def status_view(session: Session, now: datetime) -> list[ObjectiveView]:
    """Every live objective with its key results: the whole store (``status``, the dashboard).
    The API reads pages instead (:func:`objectives_page`, :func:`key_results_page`)."""
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
        rows = krs_by_objective.get(objective.id, [])
        krs = [key_result_view_of(row, elapsed, now) for row in rows]
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
                score=objective_score([WeightedScore(r.score, r.weight) for r in rows]),
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
        .where(DeliveryRow.status == DeliveryStatus.DONE)
        .group_by(col(MirrorRow.connection))
    ).all()
    return {connection: count for connection, count in sorted(rows)}


# --- pages: what the API reads, a bounded number of rows and statements per request ----------

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-ordered list: its items, how many the whole list holds, and the sort
    key of its last item when more follow (the API's cursor encodes it)."""

    items: list[T]
    total: int
    next_after: tuple[Any, ...] | None


def _page(items: list[T], keys: list[tuple[Any, ...]], total: int, limit: int) -> Page[T]:
    """``items`` read with ``limit + 1``: the extra row only says that another page follows."""
    more = len(items) > limit
    return Page(items[:limit], total, keys[limit - 1] if more else None)


def after(columns: Sequence[Any], values: Sequence[Any], *, descending: bool = False) -> Any:
    """Rows strictly past ``values`` in the order of ``columns`` (a keyset page's start).

    Spelled as ``a > x OR (a = x AND b > y) …`` with ``a >= x`` in front, so every backend can
    seek the leading column's index rather than read the rows before the cursor."""
    terms: list[ColumnElement[bool]] = []
    for i in range(len(columns)):
        equal = [columns[j] == values[j] for j in range(i)]
        beyond = columns[i] < values[i] if descending else columns[i] > values[i]
        terms.append(and_(*equal, beyond))
    lead = columns[0] <= values[0] if descending else columns[0] >= values[0]
    return and_(lead, or_(*terms))


# the key-result columns a view needs: read as plain rows, never as ORM objects
_KR_COLUMNS = (
    col(KeyResultRow.id),
    col(KeyResultRow.objective_id),
    col(KeyResultRow.title),
    col(KeyResultRow.kind),
    col(KeyResultRow.value),
    col(KeyResultRow.start),
    col(KeyResultRow.target),
    col(KeyResultRow.unit),
    col(KeyResultRow.progress),
    col(KeyResultRow.weight),
    col(KeyResultRow.stale_after_seconds),
    col(KeyResultRow.observed_at),
    col(KeyResultRow.checked_at),
    col(KeyResultRow.last_error),
    col(KeyResultRow.position),
    col(KeyResultRow.confidence),
    col(KeyResultRow.score),
    col(KeyResultRow.decimals),
)


def key_result_view_of(row: Any, elapsed: Decimal, now: datetime) -> KeyResultView:
    """A key result's row (ORM or plain) as its view at ``now``, ``elapsed`` into its cycle."""
    return KeyResultView(
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
        confidence=row.confidence,
        score=row.score,
        weight=row.weight,
        decimals=row.decimals,
    )


def _cycle_elapsed(session: Session, now: datetime) -> dict[str, Decimal]:
    """Each cycle's elapsed fraction now (a handful of rows: one statement)."""
    return {c.id: elapsed_fraction(c.start, c.end, now) for c in session.exec(select(CycleRow))}


def _objective_views(
    session: Session, objectives: Sequence[ObjectiveRow], now: datetime
) -> list[ObjectiveView]:
    """``objectives`` with their live key results: two statements whatever their number."""
    if not objectives:
        return []
    elapsed = _cycle_elapsed(session, now)
    rows_by_objective: dict[str, list[Any]] = {o.id: [] for o in objectives}
    for row in session.connection().execute(
        core_select(*_KR_COLUMNS)
        .where(
            col(KeyResultRow.objective_id).in_(list(rows_by_objective)),
            col(KeyResultRow.archived_at).is_(None),
        )
        .order_by(col(KeyResultRow.objective_id), col(KeyResultRow.position), col(KeyResultRow.id))
    ):
        rows_by_objective[row.objective_id].append(row)
    out = []
    for objective in objectives:
        fraction = elapsed[objective.cycle_id]
        rows = rows_by_objective[objective.id]
        progress = rollup([Weighted(r.progress, r.weight) for r in rows])
        out.append(
            ObjectiveView(
                id=objective.id,
                title=objective.title,
                cycle=objective.cycle_id,
                owner=objective.owner,
                progress=progress,
                status=objective_status(progress, fraction).value,
                elapsed=fraction,
                key_results=[key_result_view_of(r, fraction, now) for r in rows],
                score=objective_score([WeightedScore(r.score, r.weight) for r in rows]),
            )
        )
    return out


def objectives_page(
    session: Session,
    now: datetime,
    *,
    limit: int,
    after_key: tuple[int, str] | None = None,
    cycle: str | None = None,
) -> Page[ObjectiveView]:
    """Live objectives in ``(position, id)`` order (the order of :func:`status_view`), from past
    ``after_key``, ``limit`` of them, optionally of one cycle. Four statements: the count, the
    page (ix_objectives_position or ix_objectives_cycle_position), its key results
    (ix_key_results_objective_position) and the cycles."""
    live: list[ColumnElement[bool]] = [col(ObjectiveRow.archived_at).is_(None)]
    if cycle is not None:
        live.append(col(ObjectiveRow.cycle_id) == cycle)
    total = session.exec(select(func.count()).select_from(ObjectiveRow).where(*live)).one()
    query = select(ObjectiveRow).where(*live)
    order = (col(ObjectiveRow.position), col(ObjectiveRow.id))
    if after_key is not None:
        query = query.where(after(order, after_key))
    rows = session.exec(query.order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    views = _objective_views(session, rows[:limit], now)
    return Page(views, int(total), (rows[limit - 1].position, rows[limit - 1].id) if more else None)


def objective_view(session: Session, now: datetime, objective_id: str) -> ObjectiveView | None:
    """One live objective with its key results: three statements (the row by its key, its key
    results, the cycles)."""
    row = session.get(ObjectiveRow, objective_id)
    if row is None or row.archived_at is not None:
        return None
    return _objective_views(session, [row], now)[0]


def _live_key_results() -> Any:
    """Key results of live objectives, with the objective's position and cycle beside them."""
    return (
        core_select(
            *_KR_COLUMNS,
            col(ObjectiveRow.position).label("o_position"),
            col(ObjectiveRow.cycle_id),
        )
        .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
        .where(col(KeyResultRow.archived_at).is_(None), col(ObjectiveRow.archived_at).is_(None))
    )


def key_results_page(
    session: Session,
    now: datetime,
    *,
    limit: int,
    after_key: tuple[int, str, int, str] | None = None,
) -> Page[tuple[str, KeyResultView]]:
    """Live key results (with their objective's id) in the order of :func:`status_view`: by
    objective ``(position, id)``, then ``(position, id)`` within it. Three statements: the count,
    the page (a join walking ix_objectives_position and ix_key_results_objective_position), the
    cycles."""
    total = session.exec(
        select(func.count())
        .select_from(KeyResultRow)
        .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
        .where(col(KeyResultRow.archived_at).is_(None), col(ObjectiveRow.archived_at).is_(None))
    ).one()
    order = (
        col(ObjectiveRow.position),
        col(ObjectiveRow.id),
        col(KeyResultRow.position),
        col(KeyResultRow.id),
    )
    query = _live_key_results()
    if after_key is not None:
        query = query.where(after(order, after_key))
    rows = session.connection().execute(query.order_by(*order).limit(limit + 1)).all()
    elapsed = _cycle_elapsed(session, now) if rows else {}
    items = [(r.objective_id, key_result_view_of(r, elapsed[r.cycle_id], now)) for r in rows]
    keys = [(r.o_position, r.objective_id, r.position, r.id) for r in rows]
    return _page(items, keys, int(total), limit)


def key_result_view(
    session: Session, now: datetime, kr_id: str
) -> tuple[str, KeyResultView] | None:
    """One live key result and its objective's id: one indexed statement (by primary key, joined
    to its objective and cycle), never the whole view."""
    row = (
        session.connection()
        .execute(
            core_select(
                *_KR_COLUMNS, col(CycleRow.start).label("c_start"), col(CycleRow.end).label("c_end")
            )
            .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
            .join(CycleRow, col(CycleRow.id) == col(ObjectiveRow.cycle_id))
            .where(
                col(KeyResultRow.id) == kr_id,
                col(KeyResultRow.archived_at).is_(None),
                col(ObjectiveRow.archived_at).is_(None),
            )
        )
        .first()
    )
    if row is None:
        return None
    elapsed = elapsed_fraction(row.c_start, row.c_end, now)
    return row.objective_id, key_result_view_of(row, elapsed, now)


@dataclass(frozen=True)
class ReadStamp:
    """What the OKR reads were computed from, read in one statement: the API's ETag digests it
    (with the minute, as status and staleness move with the clock) and its latest time is the
    Last-Modified. A recorded value, a confirmation, an error, a new run, an objective or key
    result added or archived all change it."""

    last_measurement: int | None
    key_results: int
    objectives: int
    last_checked: datetime | None
    last_error: datetime | None
    last_run: datetime | None

    def last_change(self) -> datetime | None:
        times = [t for t in (self.last_checked, self.last_error, self.last_run) if t is not None]
        return max(times) if times else None

    def parts(self) -> tuple[str, ...]:
        return tuple(
            str(v)
            for v in (
                self.last_measurement,
                self.key_results,
                self.objectives,
                self.last_checked,
                self.last_error,
                self.last_run,
            )
        )


def read_stamp(session: Session) -> ReadStamp:
    live_krs = col(KeyResultRow.archived_at).is_(None)
    row = (
        session.connection()
        .execute(
            core_select(
                core_select(func.max(MeasurementRow.id)).scalar_subquery(),
                core_select(func.count())
                .select_from(KeyResultRow)
                .where(live_krs)
                .scalar_subquery(),
                core_select(func.count())
                .select_from(ObjectiveRow)
                .where(col(ObjectiveRow.archived_at).is_(None))
                .scalar_subquery(),
                core_select(func.max(KeyResultRow.checked_at)).scalar_subquery(),
                core_select(func.max(KeyResultRow.last_error_at)).scalar_subquery(),
                core_select(func.max(RunRow.started_at)).scalar_subquery(),
            )
        )
        .one()
    )
    return ReadStamp(
        row[0], int(row[1]), int(row[2]), _aware(row[3]), _aware(row[4]), _aware(row[5])
    )


def _aware(value: Any) -> datetime | None:
    """An aggregate's datetime: SQLite returns text (the column's type is not applied to max())."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
