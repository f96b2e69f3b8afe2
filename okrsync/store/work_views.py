"""Read queries over the work linked to key results and objectives (issue 15's read side).

The rows are written by the work refresh (``work_items``,
:class:`~okrsync.store.tables.WorkItemRow`); this module only reads them, for the API, the CLI,
the dashboard and the mirrors' payloads. An item is *linked* while ``unlinked_at`` is null; an
item that left its query keeps its row and is listed only when asked for (``include_unlinked``).

A key result's work is the items its ``work`` entries link; an objective's is the items its own
entries link plus those of its key results. Every function answers in a fixed number of
statements, whatever the number of items or key results: one page is two (the count and the
rows), the counts by state one, the items of many key results one (a window query).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from okrsync.sdk.work import WorkState
from okrsync.store.tables import KeyResultRow, WorkItemRow
from okrsync.store.views import Page, after

STATES: tuple[str, ...] = tuple(s.value for s in WorkState)
STATE_RANK = {WorkState.IN_PROGRESS.value: 0, WorkState.TODO.value: 1, WorkState.DONE.value: 2}
"""The order items are shown in on the dashboard: what moves now, what is next, what is done."""

ORDER = (col(WorkItemRow.connection), col(WorkItemRow.item_key), col(WorkItemRow.id))
"""A page's sort key: the tracker's own key within each connection (the row id breaks a tie
between two entries linking the same item)."""
CURSOR_SHAPE: tuple[type[str] | type[int], ...] = (str, str, int)


@dataclass(frozen=True)
class Owner:
    """Whose work: a key result's, or an objective's (its own entries and its key results')."""

    key_result_id: str | None = None
    objective_id: str | None = None

    def condition(self) -> ColumnElement[bool]:
        if self.key_result_id is not None:
            return col(WorkItemRow.key_result_id) == self.key_result_id
        assert self.objective_id is not None
        its_key_results = core_select(col(KeyResultRow.id)).where(
            col(KeyResultRow.objective_id) == self.objective_id
        )
        return or_(
            col(WorkItemRow.objective_id) == self.objective_id,
            col(WorkItemRow.key_result_id).in_(its_key_results),
        )


@dataclass(frozen=True)
class WorkCounts:
    """Linked items by state, and how many reached ``done`` since ``week_start``."""

    todo: int = 0
    in_progress: int = 0
    done: int = 0
    done_this_week: int = 0

    @property
    def total(self) -> int:
        return self.todo + self.in_progress + self.done


LINKED = col(WorkItemRow.unlinked_at).is_(None)


def work_page(
    session: Session,
    owner: Owner,
    *,
    limit: int,
    after_key: tuple[Any, ...] | None = None,
    include_unlinked: bool = False,
    state: str | None = None,
) -> Page[WorkItemRow]:
    """One page of ``owner``'s items in :data:`ORDER`: two statements (the count, the rows)."""
    where: list[ColumnElement[bool]] = [owner.condition()]
    if not include_unlinked:
        where.append(LINKED)
    if state is not None:
        where.append(col(WorkItemRow.state) == state)
    total = session.exec(select(func.count()).select_from(WorkItemRow).where(*where)).one()
    query = select(WorkItemRow).where(*where)
    if after_key is not None:
        query = query.where(after(ORDER, after_key))
    rows = list(session.exec(query.order_by(*ORDER).limit(limit + 1)).all())
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    following = None if last is None else (last.connection, last.item_key, last.id)
    return Page(rows[:limit], int(total), following)


def _done_after(week_start: datetime) -> Any:
    return func.sum(
        case(
            (
                and_(
                    col(WorkItemRow.state) == WorkState.DONE.value,
                    col(WorkItemRow.done_at) >= week_start,
                ),
                1,
            ),
            else_=0,
        )
    )


def _counts(rows: Sequence[Any]) -> WorkCounts:
    by_state = {state: 0 for state in STATES}
    week = 0
    for state, count, done_this_week in rows:
        if state in by_state:
            by_state[state] += int(count)
        week += int(done_this_week or 0)
    return WorkCounts(
        todo=by_state[WorkState.TODO.value],
        in_progress=by_state[WorkState.IN_PROGRESS.value],
        done=by_state[WorkState.DONE.value],
        done_this_week=week,
    )


def work_counts(session: Session, owner: Owner, week_start: datetime) -> WorkCounts:
    """``owner``'s linked items counted by state: one grouped statement."""
    rows = session.execute(
        core_select(col(WorkItemRow.state), func.count(), _done_after(week_start))
        .where(owner.condition(), LINKED)
        .group_by(col(WorkItemRow.state))
    ).all()
    return _counts(rows)


def counts_by_key_result(
    session: Session, kr_ids: Sequence[str], week_start: datetime
) -> dict[str, WorkCounts]:
    """Each key result's linked items by state (only those with work): one statement."""
    if not kr_ids:
        return {}
    rows = session.execute(
        core_select(
            col(WorkItemRow.key_result_id),
            col(WorkItemRow.state),
            func.count(),
            _done_after(week_start),
        )
        .where(col(WorkItemRow.key_result_id).in_(sorted(set(kr_ids))), LINKED)
        .group_by(col(WorkItemRow.key_result_id), col(WorkItemRow.state))
    ).all()
    grouped: dict[str, list[Any]] = {}
    for kr_id, state, count, week in rows:
        grouped.setdefault(kr_id, []).append((state, count, week))
    return {kr_id: _counts(found) for kr_id, found in grouped.items()}


def items_by_key_result(
    session: Session, kr_ids: Sequence[str], per_key_result: int, week_start: datetime
) -> dict[str, tuple[WorkCounts, list[WorkItemRow]]]:
    """Each key result's linked items counted by state, and the first ``per_key_result`` of them:
    in progress first, then to do, then done (newest done first). One window query; only key
    results with linked work are in the answer."""
    if not kr_ids:
        return {}
    rank_state = case(
        *((col(WorkItemRow.state) == state, literal(rank)) for state, rank in STATE_RANK.items()),
        else_=literal(len(STATE_RANK)),
    )
    # done items newest first; the others by key (done_at is null for them)
    newest = func.coalesce(col(WorkItemRow.done_at), col(WorkItemRow.first_linked_at))
    order = (rank_state, newest.desc(), col(WorkItemRow.connection), col(WorkItemRow.item_key))
    mine = col(WorkItemRow.key_result_id)

    def per_state(state: str) -> Any:
        counted = case((col(WorkItemRow.state) == state, 1), else_=0)
        return func.sum(counted).over(partition_by=mine)

    inner = (
        core_select(
            col(WorkItemRow.id).label("item_id"),
            func.row_number().over(partition_by=mine, order_by=order).label("rank"),
            *(per_state(state).label(f"n_{state}") for state in STATES),
            _done_after(week_start).over(partition_by=mine).label("n_week"),
        )
        .where(mine.in_(sorted(set(kr_ids))), LINKED)
        .subquery()
    )
    rows = session.execute(
        core_select(
            WorkItemRow,
            inner.c.n_todo,
            inner.c.n_in_progress,
            inner.c.n_done,
            inner.c.n_week,
        )
        .join(inner, inner.c.item_id == col(WorkItemRow.id))
        .where(inner.c.rank <= per_key_result)
        .order_by(mine, inner.c.rank)
    ).all()
    out: dict[str, tuple[WorkCounts, list[WorkItemRow]]] = {}
    for row, todo, in_progress, done, week in rows:
        assert row.key_result_id is not None
        if row.key_result_id not in out:
            counts = WorkCounts(int(todo), int(in_progress), int(done), int(week or 0))
            out[row.key_result_id] = (counts, [])
        out[row.key_result_id][1].append(row)
    return out


def done_after(session: Session, kr_ids: Sequence[str], since: datetime) -> list[WorkItemRow]:
    """Linked items of these key results done after ``since``, newest first: one statement."""
    if not kr_ids:
        return []
    return list(
        session.exec(
            select(WorkItemRow)
            .where(
                col(WorkItemRow.key_result_id).in_(sorted(set(kr_ids))),
                LINKED,
                col(WorkItemRow.state) == WorkState.DONE.value,
                col(WorkItemRow.done_at) > since,
            )
            .order_by(col(WorkItemRow.done_at).desc(), col(WorkItemRow.id))
        ).all()
    )


def done_times(
    session: Session, kr_ids: Sequence[str], since: datetime
) -> dict[str, list[tuple[datetime, str]]]:
    """When each key result's linked items were done (at or after ``since``), oldest first, with
    their keys: the marks on its burn-up chart. One statement."""
    if not kr_ids:
        return {}
    rows = session.execute(
        core_select(
            col(WorkItemRow.key_result_id), col(WorkItemRow.done_at), col(WorkItemRow.item_key)
        )
        .where(
            col(WorkItemRow.key_result_id).in_(sorted(set(kr_ids))),
            LINKED,
            col(WorkItemRow.state) == WorkState.DONE.value,
            col(WorkItemRow.done_at) >= since,
        )
        .order_by(col(WorkItemRow.key_result_id), col(WorkItemRow.done_at))
    ).all()
    out: dict[str, list[tuple[datetime, str]]] = {}
    for kr_id, at, key in rows:
        out.setdefault(kr_id, []).append((at, key))
    return out
