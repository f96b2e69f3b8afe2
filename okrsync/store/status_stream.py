"""``okrsync status`` at any size: key results streamed from the store, one objective at a time.

:func:`okrsync.store.views.status_view` builds every objective in memory (fine for a page, not
for 10,000 key results printed by the CLI). Here one query joins objectives, their cycle and their
key results in display order and is read in chunks (``yield_per``: a server-side cursor on
PostgreSQL, ``fetchmany`` on SQLite); rows are grouped into one objective at a time, so what is
held at once is one chunk of rows plus the key results of one objective, whatever the store holds.

Filters: ``owner`` and ``cycle`` are ``WHERE`` clauses. A key result's status is computed at read
time from its progress and the clock (pace against the cycle changes as days pass), and progress
is exact text that is never compared in SQL (see :class:`okrsync.store.types.DecimalText`), so
``status`` is applied to each row as it streams past: the objective's own progress still rolls up
all of its key results, as ``status`` shows it unfiltered, and an objective none of whose key
results match is left out.

The JSON written is ``{"objectives": [...], "connections": [...]}`` indented by two, written
object by object: each objective and connection is the API's answer for it
(:mod:`okrsync.read_models`), encoded by pydantic's own serialiser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from okrsync.domain.grading import WeightedScore, objective_score
from okrsync.domain.progress import KRKind
from okrsync.domain.status import Weighted, elapsed_fraction, objective_status, rollup, status_for
from okrsync.read_models import from_store
from okrsync.store.tables import CycleRow, KeyResultRow, ObjectiveRow
from okrsync.store.views import ConnectionView, KeyResultView, ObjectiveView, stale_deadline

CHUNK = 500
STATUSES = ("on_track", "at_risk", "off_track", "no_data")

_o = ObjectiveRow.__table__.c  # type: ignore[attr-defined]
_k = KeyResultRow.__table__.c  # type: ignore[attr-defined]
_c = CycleRow.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StatusFilter:
    owner: str | None = None
    cycle: str | None = None
    status: frozenset[str] = frozenset()  # empty: every status

    def wants(self, status: str) -> bool:
        return not self.status or status in self.status


@dataclass
class StreamStats:
    """What a stream held at once, so tests can check it stays bounded (not RSS: a counter)."""

    rows: int = 0  # key-result rows read
    objectives: int = 0  # objectives yielded
    max_chunk: int = 0  # the most rows fetched in one go
    max_held: int = 0  # the most key results held for one objective
    chunks: int = 0  # fetches


def _query(where: StatusFilter) -> Any:
    stmt = (
        select(
            _o.id,
            _o.title,
            _o.cycle_id,
            _o.owner,
            _c.start.label("cycle_start"),
            _c.end.label("cycle_end"),
            _k.id.label("kr_id"),
            _k.title.label("kr_title"),
            _k.kind,
            _k.value,
            _k.start,
            _k.target,
            _k.unit,
            _k.progress,
            _k.weight,
            _k.stale_after_seconds,
            _k.observed_at,
            _k.checked_at,
            _k.last_error,
            _k.confidence,
            _k.score,
            _k.decimals,
        )
        .select_from(ObjectiveRow.__table__)  # type: ignore[attr-defined]
        .join(CycleRow.__table__, _c.id == _o.cycle_id)  # type: ignore[attr-defined]
        .outerjoin(
            KeyResultRow.__table__,  # type: ignore[attr-defined]
            (_k.objective_id == _o.id) & _k.archived_at.is_(None),
        )
        .where(_o.archived_at.is_(None))
        .order_by(_o.position, _o.id, _k.position, _k.id)
    )
    if where.owner is not None:
        stmt = stmt.where(_o.owner == where.owner)
    if where.cycle is not None:
        stmt = stmt.where(_o.cycle_id == where.cycle)
    return stmt


def _stale(
    stale_after_seconds: int | None,
    seen: datetime | None,
    now: datetime,
) -> bool:
    if stale_after_seconds is None:
        return False
    return seen is None or now > stale_deadline(seen, stale_after_seconds)


def stream_status(
    session: Session,
    now: datetime,
    where: StatusFilter | None = None,
    *,
    chunk: int = CHUNK,
    stats: StreamStats | None = None,
) -> Iterator[ObjectiveView]:
    """Objectives in display order, each with its key results; rows read ``chunk`` at a time.

    Each row is unpacked by position, in :func:`_query`'s column order: reading a ``Row`` by
    attribute name costs more than the rest of the loop (a fifth of a second at 10,000 rows).
    """
    where = where or StatusFilter()
    stats = stats if stats is not None else StreamStats()
    result = session.execute(_query(where), execution_options={"yield_per": chunk})
    current: tuple[str, str, str, str | None] | None = None  # id, title, cycle, owner
    elapsed = Decimal(0)
    elapsed_of_cycle: dict[str, Decimal] = {}
    shown: list[KeyResultView] = []
    weights: list[Weighted] = []
    scores: list[WeightedScore] = []

    def finish() -> ObjectiveView | None:
        assert current is not None
        progress = rollup(weights)
        if where.status and not shown:
            return None
        return ObjectiveView(
            id=current[0],
            title=current[1],
            cycle=current[2],
            owner=current[3],
            progress=progress,
            status=objective_status(progress, elapsed).value,
            elapsed=elapsed,
            key_results=shown,
            score=objective_score(scores),
        )

    for part in result.partitions():
        stats.max_chunk = max(stats.max_chunk, len(part))
        stats.chunks += 1
        for row in part:
            (
                objective_id,
                objective_title,
                cycle_id,
                owner,
                cycle_start,
                cycle_end,
                kr_id,
                kr_title,
                kind,
                value,
                start,
                target,
                unit,
                progress,
                weight,
                stale_after_seconds,
                observed_at,
                checked_at,
                last_error,
                confidence,
                score,
                decimals,
            ) = row
            if current is None or objective_id != current[0]:
                if current is not None and (view := finish()) is not None:
                    stats.objectives += 1
                    yield view
                current = (objective_id, objective_title, cycle_id, owner)
                if cycle_id not in elapsed_of_cycle:  # one clock reading per cycle
                    elapsed_of_cycle[cycle_id] = elapsed_fraction(cycle_start, cycle_end, now)
                elapsed = elapsed_of_cycle[cycle_id]
                shown, weights, scores = [], [], []
            if kr_id is None:  # an objective without key results
                continue
            stats.rows += 1
            status = status_for(KRKind(kind), progress, elapsed).value
            weights.append(Weighted(progress, weight))
            scores.append(WeightedScore(score, weight))
            if where.wants(status):
                shown.append(
                    KeyResultView(
                        id=kr_id,
                        title=kr_title,
                        kind=kind,
                        value=value,
                        start=start,
                        target=target,
                        unit=unit,
                        progress=progress,
                        status=status,
                        stale=_stale(stale_after_seconds, checked_at or observed_at, now),
                        observed_at=observed_at,
                        checked_at=checked_at,
                        last_error=last_error,
                        confidence=confidence,
                        score=score,
                        weight=weight,
                        decimals=decimals,
                    )
                )
            stats.max_held = max(stats.max_held, len(weights))
    if current is not None and (view := finish()) is not None:
        stats.objectives += 1
        yield view


def _indented(answer: BaseModel, depth: int) -> str:
    """``answer`` as it appears ``depth`` levels deep in an ``indent=2`` document.

    Encoded JSON strings hold no raw newline, so every newline is the layout's.
    """
    return answer.model_dump_json(indent=2).replace("\n", "\n" + "  " * depth)


def _write_list(out: IO[str], items: Iterable[str]) -> None:
    first = True
    for item in items:
        out.write(("\n    " if first else ",\n    ") + item)
        first = False
    out.write("]" if first else "\n  ]")


def write_status_json(
    out: IO[str], objectives: Iterable[ObjectiveView], connections: Sequence[ConnectionView]
) -> None:
    """Write ``{"objectives": [...], "connections": [...]}`` as each objective arrives.

    Each item is :class:`okrsync.read_models.models.Objective` or ``Connection``, as the API
    answers it; the document is laid out as ``json.dumps(indent=2, ensure_ascii=False)`` lays it
    out, followed by a newline.
    """
    out.write('{\n  "objectives": [')
    _write_list(out, (_indented(from_store.objective(o), 2) for o in objectives))
    out.write(',\n  "connections": [')
    _write_list(out, (_indented(from_store.connection(c.name, c.type, c), 2) for c in connections))
    out.write("\n}\n")
