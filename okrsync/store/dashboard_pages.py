"""The dashboard's page queries: a fixed number of SQL statements per page, whatever the size.

The overview (``cycle_page``) reads one page of a cycle's objectives and their key results, and
counts and rolls up the rest in SQL, in six statements; one objective's page
(``objective_page``) reads that objective, its key results, the current measurements and the
newest values of the key results shown (one window query), in five, and their linked work in
up to two more (:mod:`okrsync.store.work_panels`). Nothing is read per key result or per
objective, so a page costs the same number of round trips at 10 and at 100,000 key
results. Progress is exact decimal text (:mod:`okrsync.store.types`): where SQL compares or sums
it, it does so as a float only to sort the clear cases, and anything within ``NEAR`` of a status
threshold comes back to Python and ``okrsync.domain.status``, so statuses are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, String, case, cast, func, literal, or_, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from okrsync.domain.grading import WeightedScore, objective_score
from okrsync.domain.progress import KRKind
from okrsync.domain.status import (
    AT_RISK_GAP,
    ON_TRACK_GAP,
    Weighted,
    elapsed_fraction,
    objective_status,
    rollup,
    status_for,
)
from okrsync.store import views
from okrsync.store.tables import CycleRow, KeyResultRow, MeasurementRow, ObjectiveRow
from okrsync.store.types import UtcDateTime
from okrsync.store.work_panels import WorkPanel, work_panels

MAX_OWNERS = 500
"""The owner filter suggests at most this many owners (any other can still be typed)."""
STATUSES = ("on_track", "at_risk", "off_track", "no_data")
MAX_LIMIT = 100
"""No page lists more objectives (or key results) than this, whatever ``limit`` asks for."""


@dataclass(frozen=True)
class Cycle:
    id: str
    start: date
    end: date


@dataclass(frozen=True)
class ObjectiveSummary:
    """One objective's line on the overview: its roll-up and its key results counted by status."""

    id: str
    title: str
    cycle: str
    owner: str | None
    progress: Decimal | None
    status: str
    elapsed: Decimal
    key_results: int
    by_status: dict[str, int]
    stale: int


@dataclass(frozen=True)
class Filters:
    cycle: str | None = None
    owner: str | None = None
    status: str | None = None
    search: str | None = None
    page: int = 1
    limit: int = 25


@dataclass(frozen=True)
class CyclePage:
    cycles: list[Cycle]
    cycle: Cycle | None
    elapsed: Decimal
    owners: list[str]
    objectives: list[ObjectiveSummary]
    total: int
    """Objectives matching the filters (``objectives`` is one page of them)."""
    counts: dict[str, int]
    """Key results of the matching objectives, by status."""
    connections: list[views.ConnectionView]


def pick_cycle(cycles: list[Cycle], now: datetime) -> Cycle | None:
    """The cycle running today, else the latest one started, else the first."""
    today = now.date()
    running = [c for c in cycles if c.start <= today <= c.end]
    if running:
        return running[0]
    started = [c for c in cycles if c.start <= today]
    if started:
        return max(started, key=lambda c: c.start)
    return cycles[0] if cycles else None


def cycles_with_objectives(session: Session) -> list[Cycle]:
    live = select(ObjectiveRow.cycle_id).where(col(ObjectiveRow.archived_at).is_(None))
    rows = session.execute(
        sa_select(col(CycleRow.id), col(CycleRow.start), col(CycleRow.end))
        .where(col(CycleRow.id).in_(live))
        .order_by(col(CycleRow.start), col(CycleRow.id))
    ).all()
    return [Cycle(r[0], r[1], r[2]) for r in rows]


def _objective_filters(cycle_id: str, filters: Filters) -> list[Any]:
    where: list[Any] = [
        col(ObjectiveRow.cycle_id) == cycle_id,
        col(ObjectiveRow.archived_at).is_(None),
    ]
    if filters.owner:
        where.append(col(ObjectiveRow.owner) == filters.owner)
    if filters.search:
        needle = "%" + _like_escape(filters.search.lower()) + "%"
        where.append(
            or_(
                func.lower(col(ObjectiveRow.title)).like(needle, escape="\\"),
                func.lower(col(ObjectiveRow.id)).like(needle, escape="\\"),
            )
        )
    return where


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def cycle_page(session: Session, now: datetime, filters: Filters) -> CyclePage:
    """The overview of one cycle (``filters.cycle`` or the one running) in six statements (seven
    for a page past the last), whatever the cycle holds.

    Only the page's objectives and their key results are read as rows; the cycle's key results
    are counted by status in SQL (``status_counts``), and for a status filter every objective's
    roll-up is summed in SQL (``_objective_statuses``), in both cases with values too close to a
    threshold for a float settled exactly in Python.
    """
    cycles = cycles_with_objectives(session)
    chosen = (
        next((c for c in cycles if c.id == filters.cycle), None)
        if filters.cycle
        else pick_cycle(cycles, now)
    )
    connections = views.connections_view(session)
    if chosen is None:
        return CyclePage(cycles, None, Decimal(0), [], [], 0, {}, connections)
    elapsed = elapsed_fraction(chosen.start, chosen.end, now)
    where = _objective_filters(chosen.id, filters)
    status_of = _StatusOf(elapsed)
    limit = max(1, min(filters.limit, MAX_LIMIT))
    first = (max(filters.page, 1) - 1) * limit
    listed = sa_select(
        col(ObjectiveRow.id),
        col(ObjectiveRow.title),
        col(ObjectiveRow.owner),
        func.count().over().label("total"),
    ).where(*where)
    ordered = listed.order_by(col(ObjectiveRow.position), col(ObjectiveRow.id))
    if filters.status:
        # the status filter needs every objective's roll-up: summed in SQL, one row per objective
        rolled = _objective_statuses(session, where, elapsed)
        unsure = [r.id for r in rolled if r.status is None or r.doubtful]
        exact = _group(_key_results(session, col(KeyResultRow.objective_id).in_(unsure)))
        matching = []
        counts = dict.fromkeys(STATUSES, 0)
        for r in rolled:
            status, by_status = r.status, r.by_status
            if status is None or r.doubtful:
                krs = exact.get(r.id, [])
                settled = _summarise(r.id, r.title, chosen.id, r.owner, krs, status_of, now)
                status, by_status = settled.status, settled.by_status
            if status == filters.status:
                matching.append((r.id, r.title, r.owner))
                for name, n in by_status.items():
                    counts[name] += n
        page = matching[first : first + limit]
        grouped = _group(
            _key_results(session, col(KeyResultRow.objective_id).in_([o[0] for o in page]))
        )
        shown = [
            _summarise(oid, title, chosen.id, owner, grouped.get(oid, []), status_of, now)
            for oid, title, owner in page
        ]
        total = len(matching)
    else:
        objectives = session.execute(ordered.limit(limit).offset(first)).all()
        ids = [o[0] for o in objectives]
        grouped = _group(_key_results(session, col(KeyResultRow.objective_id).in_(ids)))
        shown = [
            _summarise(oid, title, chosen.id, owner, grouped.get(oid, []), status_of, now)
            for oid, title, owner, _ in objectives
        ]
        counts = status_counts(session, where, status_of)
        # the total rides on the page's rows; past the last page there is none: count them
        total = objectives[0][3] if objectives else (_count(session, where) if first else 0)
    return CyclePage(
        cycles=cycles,
        cycle=chosen,
        elapsed=elapsed,
        owners=owner_list(session, chosen.id),
        objectives=shown,
        total=total,
        counts=counts,
        connections=connections,
    )


def _count(session: Session, where: list[Any]) -> int:
    return int(
        session.execute(sa_select(func.count()).select_from(ObjectiveRow).where(*where)).one()[0]
    )


def _key_results(session: Session, *where: Any) -> list[Any]:
    """What status, roll-up and staleness need of each key result, as plain rows (read through the
    Connection: no ORM loading per key result); the last-seen moment only where a staleness
    deadline makes it matter, so most rows skip its conversion."""
    seen = func.coalesce(col(KeyResultRow.checked_at), col(KeyResultRow.observed_at))
    query = (
        sa_select(
            col(KeyResultRow.objective_id),
            col(KeyResultRow.kind),
            type_coerce(col(KeyResultRow.progress), String),
            type_coerce(col(KeyResultRow.weight), String),
            col(KeyResultRow.stale_after_seconds),
            type_coerce(
                case((col(KeyResultRow.stale_after_seconds).is_not(None), seen)), UtcDateTime
            ),
            type_coerce(col(KeyResultRow.score), String),
        )
        .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
        .where(*where, col(KeyResultRow.archived_at).is_(None))
    )
    return list(session.connection().execute(query).all())


def _group(krs: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for kr in krs:
        grouped.setdefault(kr[0], []).append(kr)
    return grouped


NEAR = 1e-9
"""How close (as a float) a progress may be to a status threshold before SQL leaves it to Python."""

PACED = ("increase", "decrease")
HELD = ("stay_above", "stay_below", "stay_between")


def _band(elapsed: Decimal) -> Any:
    """A key result's status as SQL sees it, or ``EXACT`` where a float cannot be trusted.

    Every status is a threshold on progress (see :func:`okrsync.domain.status.status_for`): for
    increase/decrease, on track from ``elapsed - ON_TRACK_GAP``, at risk from ``elapsed -
    AT_RISK_GAP``; held lines and milestones from 1. A progress within ``NEAR`` of a threshold,
    or not a finite number, is ``EXACT``: its status is for Python to settle (a float of a
    decimal text is off by far less than ``NEAR``).
    """
    p = cast(col(KeyResultRow.progress), Float)
    text_ = col(KeyResultRow.progress)

    def above(threshold: float, yes: str, otherwise: Any) -> Any:
        return case(
            (p >= threshold + NEAR, literal(yes)),
            (p > threshold - NEAR, literal(EXACT)),
            else_=otherwise,
        )

    on_pace = float(elapsed - ON_TRACK_GAP)
    at_risk = float(elapsed - AT_RISK_GAP)
    milestone_late = status_for(KRKind.MILESTONE, Decimal(0), elapsed).value
    return case(
        (text_.is_(None), literal("no_data")),
        (func.lower(text_).like("%n%"), literal(EXACT)),  # nan, inf(inity): not for floats
        (
            col(KeyResultRow.kind).in_(PACED),
            above(on_pace, "on_track", above(at_risk, "at_risk", literal("off_track"))),
        ),
        (col(KeyResultRow.kind).in_(HELD), above(1.0, "on_track", literal("off_track"))),
        (
            col(KeyResultRow.kind) == "milestone",
            above(1.0, "on_track", literal(milestone_late)),
        ),
        else_=literal(EXACT),
    )


def status_counts(session: Session, where: list[Any], status_of: _StatusOf) -> dict[str, int]:
    """Key results of the objectives matching ``where``, counted by status, in one statement:
    SQL counts each kind and band (``_band``); those it leaves ``EXACT`` come back as their
    progress text and get their status from ``status_for``, so the counts are exactly what the
    per-key-result statuses are."""
    band = _band(status_of.elapsed)
    inner = (
        sa_select(
            col(KeyResultRow.kind).label("kind"),
            band.label("band"),
            case((band == EXACT, col(KeyResultRow.progress))).label("exact"),
        )
        .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
        .where(*where, col(KeyResultRow.archived_at).is_(None))
        .subquery()
    )
    groups = (inner.c.kind, inner.c.band, inner.c.exact)
    rows = session.connection().execute(sa_select(*groups, func.count()).group_by(*groups))
    counts = dict.fromkeys(STATUSES, 0)
    for kind, status, exact, n in rows:
        if status == EXACT:
            status = status_of(kind, exact)
        counts[status] = counts.get(status, 0) + n
    return counts


EXACT = "exact"


@dataclass(frozen=True)
class _Rolled:
    id: str
    title: str
    owner: str | None
    status: str | None
    """``None`` where the float roll-up leaves the status in doubt."""
    by_status: dict[str, int]
    doubtful: int
    """Key results whose status SQL left to Python (``by_status`` leaves them out)."""


def _objective_statuses(session: Session, where: list[Any], elapsed: Decimal) -> list[_Rolled]:
    """Each objective matching ``where``, in order, with its status and its key results counted
    by status, in one statement: the roll-up (weighted mean of progress clamped to 0..1, a
    missing one counting 0, see :func:`okrsync.domain.status.rollup`) is summed in SQL as floats.
    The status is ``None`` where the float leaves it in doubt (within ``NEAR`` of a threshold, a
    non-finite progress or weight, weights summing to almost 0); the caller settles those, and the
    objectives with ``doubtful`` key results, exactly from their key results."""
    progress = col(KeyResultRow.progress)
    weight = col(KeyResultRow.weight)
    p = cast(progress, Float)
    w = cast(weight, Float)
    clamped = case((progress.is_(None), 0.0), (p < 0.0, 0.0), (p > 1.0, 1.0), else_=p)
    odd = case((or_(func.lower(progress).like("%n%"), func.lower(weight).like("%n%")), 1), else_=0)
    inner = (
        sa_select(
            col(KeyResultRow.objective_id).label("oid"),
            _band(elapsed).label("band"),
            (w * clamped).label("wp"),
            w.label("w"),
            progress.label("progress"),
            odd.label("odd"),
        )
        .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
        .where(*where, col(KeyResultRow.archived_at).is_(None))
        .subquery()
    )
    bands = (*STATUSES, EXACT)
    rows = session.connection().execute(
        sa_select(
            col(ObjectiveRow.id),
            col(ObjectiveRow.title),
            col(ObjectiveRow.owner),
            func.sum(inner.c.wp),
            func.sum(inner.c.w),
            func.count(inner.c.progress),
            func.max(inner.c.odd),
            *(func.sum(case((inner.c.band == band, 1), else_=0)) for band in bands),
        )
        .select_from(ObjectiveRow)
        .outerjoin(inner, inner.c.oid == col(ObjectiveRow.id))
        .where(*where)
        .group_by(
            col(ObjectiveRow.id),
            col(ObjectiveRow.title),
            col(ObjectiveRow.owner),
            col(ObjectiveRow.position),
        )
        .order_by(col(ObjectiveRow.position), col(ObjectiveRow.id))
    )
    on_pace = float(elapsed - ON_TRACK_GAP)
    at_risk = float(elapsed - AT_RISK_GAP)
    out: list[_Rolled] = []
    for oid, title, owner, weighted, weights, measured, strange, *per_band in rows:
        status: str | None
        if not measured:
            status = "no_data"  # no key result with progress: the roll-up is unknown
        elif strange or weights is None or weights < 1e-6:
            status = None
        else:
            mean = weighted / weights
            if abs(mean - on_pace) < NEAR or abs(mean - at_risk) < NEAR:
                status = None
            elif mean >= on_pace:
                status = "on_track"
            else:
                status = "at_risk" if mean >= at_risk else "off_track"
        counts = {band: int(n or 0) for band, n in zip(bands, per_band, strict=True)}
        doubtful = counts.pop(EXACT)
        by_status = {k: v for k, v in counts.items() if v}
        out.append(_Rolled(oid, title, owner, status, by_status, doubtful))
    return out


def owner_list(session: Session, cycle_id: str) -> list[str]:
    """Owners of a cycle's objectives (the first ``MAX_OWNERS``), offered by the owner filter."""
    rows = session.execute(
        sa_select(col(ObjectiveRow.owner))
        .where(
            col(ObjectiveRow.cycle_id) == cycle_id,
            col(ObjectiveRow.archived_at).is_(None),
            col(ObjectiveRow.owner).is_not(None),
        )
        .distinct()
        .order_by(col(ObjectiveRow.owner))
        .limit(MAX_OWNERS)
    ).all()
    return [r[0] for r in rows]


_KINDS = {kind.value: kind for kind in KRKind}


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class _StatusOf:
    """A key result's status by kind and progress text, each distinct pair computed once per
    page (many key results share a progress: 0, 1, none yet)."""

    def __init__(self, elapsed: Decimal) -> None:
        self.elapsed = elapsed
        self.memo: dict[tuple[str, str | None], str] = {}

    def __call__(self, kind: str, progress: str | None) -> str:
        got = self.memo.get((kind, progress))
        if got is None:
            value = None if progress is None else Decimal(progress)
            got = status_for(_KINDS[kind], value, self.elapsed).value
            self.memo[(kind, progress)] = got
        return got


def _summarise(
    oid: str,
    title: str,
    cycle_id: str,
    owner: str | None,
    krs: list[Any],
    status_of: _StatusOf,
    now: datetime,
) -> ObjectiveSummary:
    by_status: dict[str, int] = {}
    stale = 0
    for row in krs:
        status = status_of(row[1], row[2])
        by_status[status] = by_status.get(status, 0) + 1
        stale_after, seen = row[4], row[5]
        if stale_after is not None and (
            seen is None or now > views.stale_deadline(seen, stale_after)
        ):
            stale += 1
    progress = rollup([Weighted(_decimal(kr[2]), Decimal(kr[3])) for kr in krs])
    elapsed = status_of.elapsed
    return ObjectiveSummary(
        id=oid,
        title=title,
        cycle=cycle_id,
        owner=owner,
        progress=progress,
        status=objective_status(progress, elapsed).value,
        elapsed=elapsed,
        key_results=len(krs),
        by_status=by_status,
        stale=stale,
    )


# --------------------------------------------------------------------------- one objective


@dataclass(frozen=True)
class KeyResultDetail:
    view: views.KeyResultView
    row: KeyResultRow
    current: MeasurementRow | None
    samples: list[tuple[datetime, Decimal]] = field(default_factory=list)
    work: WorkPanel | None = None  # the linked work items, when it has any (issue 15)


@dataclass(frozen=True)
class ObjectivePage:
    objective: views.ObjectiveView
    """The objective with the key results of this page (its progress rolls up all of them)."""
    cycle: Cycle
    key_results: list[KeyResultDetail]
    total: int
    page: int
    limit: int


def objective_page(
    session: Session,
    now: datetime,
    objective_id: str,
    page: int = 1,
    limit: int = 20,
    history_limit: int = 500,
) -> ObjectivePage | None:
    """One objective with one page of its key results, each with its current measurement and its
    newest ``history_limit`` values and its linked work: five statements and up to two for the
    work (fewer when nothing is recorded), ``None`` when there is no such objective. Only the
    roll-up reads every key result, as plain rows."""
    found = session.execute(
        sa_select(ObjectiveRow, CycleRow)
        .join(CycleRow, col(CycleRow.id) == col(ObjectiveRow.cycle_id))
        .where(col(ObjectiveRow.id) == objective_id, col(ObjectiveRow.archived_at).is_(None))
    ).first()
    if found is None:
        return None
    objective, cycle_row = found
    cycle = Cycle(cycle_row.id, cycle_row.start, cycle_row.end)
    elapsed = elapsed_fraction(cycle.start, cycle.end, now)
    # the roll-up needs every key result, as plain rows; whole rows only for the page shown
    everything = _key_results(session, col(KeyResultRow.objective_id) == objective_id)
    limit = max(1, min(limit, MAX_LIMIT))
    first = (max(page, 1) - 1) * limit
    shown = session.exec(
        select(KeyResultRow)
        .where(
            col(KeyResultRow.objective_id) == objective_id,
            col(KeyResultRow.archived_at).is_(None),
        )
        .order_by(col(KeyResultRow.position), col(KeyResultRow.id))
        .limit(limit)
        .offset(first)
    ).all()
    ids = [r.id for r in shown]
    current_ids = [r.last_measurement_id for r in shown if r.last_measurement_id is not None]
    currents: dict[int, MeasurementRow] = {}
    if current_ids:
        for m in session.exec(
            select(MeasurementRow).where(col(MeasurementRow.id).in_(current_ids))
        ):
            assert m.id is not None
            currents[m.id] = m
    samples = _newest_values(session, ids, history_limit) if ids else {}
    cycle_begins = datetime(cycle.start.year, cycle.start.month, cycle.start.day, tzinfo=UTC)
    work = work_panels(session, ids, now, cycle_begins) if ids else {}  # one or two statements
    details = []
    for row in shown:
        view = views.key_result_view_of(row, elapsed, now)
        current = currents.get(row.last_measurement_id) if row.last_measurement_id else None
        details.append(
            KeyResultDetail(view, row, current, samples.get(row.id, []), work.get(row.id))
        )
    progress = rollup([Weighted(_decimal(r[2]), Decimal(r[3])) for r in everything])
    summary = views.ObjectiveView(
        id=objective.id,
        title=objective.title,
        cycle=objective.cycle_id,
        owner=objective.owner,
        progress=progress,
        status=objective_status(progress, elapsed).value,
        elapsed=elapsed,
        key_results=[d.view for d in details],
        score=objective_score([WeightedScore(_decimal(r[6]), Decimal(r[3])) for r in everything]),
    )
    return ObjectivePage(summary, cycle, details, len(everything), max(page, 1), limit)


def _newest_values(
    session: Session, kr_ids: list[str], limit: int
) -> dict[str, list[tuple[datetime, Decimal]]]:
    """The newest ``limit`` values of each key result, oldest first: one window query."""
    rank = (
        func.row_number()
        .over(
            partition_by=col(MeasurementRow.key_result_id),
            order_by=(col(MeasurementRow.observed_at).desc(), col(MeasurementRow.id).desc()),
        )
        .label("rank")
    )
    inner = (
        sa_select(
            col(MeasurementRow.key_result_id),
            col(MeasurementRow.observed_at),
            col(MeasurementRow.value),
            col(MeasurementRow.id),
            rank,
        )
        .where(
            col(MeasurementRow.key_result_id).in_(kr_ids),
            col(MeasurementRow.value).is_not(None),
        )
        .subquery()
    )
    rows = session.execute(
        sa_select(inner.c.key_result_id, inner.c.observed_at, inner.c.value)
        .where(inner.c.rank <= limit)
        .order_by(inner.c.key_result_id, inner.c.observed_at, inner.c.id)
    ).all()
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    for kr_id, at, value in rows:
        out.setdefault(kr_id, []).append((at, value))
    return out
