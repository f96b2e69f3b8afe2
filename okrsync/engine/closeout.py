"""Closing a cycle: the frozen record, one final push per mirror, and no more fetching.

A cycle closes when its grace period (``close_after``) after its end is over — the daemon
looks each pass (:meth:`CycleCloser.close_due`) — or earlier by command (``okrsync cycle close
ID``). Closing is one transaction:

* the cycle's row is locked (``FOR UPDATE``; on SQLite the single writer serialises it) and, if
  ``closed_at`` is already set, nothing happens: another replica, an earlier pass or the
  command closed it, so the record is written once across replicas and restarts;
* each key result of the cycle's objectives is frozen into ``cycle_closeouts`` as the store
  holds it (value, progress, status, score, confidence), and each objective with its weighted
  progress, status and score;
* every live mirror of those key results gets one delivery whose payload is marked ``final``,
  with the final score (its idempotency key derives from the cycle, so it is queued once);
* ``closed_at`` is set.

From then on the daemon and ``okrsync sync`` leave out the metrics that only closed cycles'
key results read (:func:`open_metric_names`): zero vendor requests for a closed cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from okrsync.config import Config, CycleDef, KeyResultDef, ObjectiveDef
from okrsync.domain.cycles import CycleState, closes_at, state_at
from okrsync.domain.grading import WeightedScore, objective_score, score
from okrsync.domain.pacing import DeliveryPolicy, earliest_push
from okrsync.domain.progress import ONE
from okrsync.domain.status import Weighted, objective_status, rollup
from okrsync.engine.outbox import (
    DELIVERY_TABLE,
    _delivery,
    idempotency_key,
    key_result_update,
    next_sequence,
)
from okrsync.store.db import session_scope
from okrsync.store.tables import CycleCloseoutRow, CycleRow, KeyResultRow, MirrorRow

log = structlog.get_logger()

KEY_RESULT = "key_result"
OBJECTIVE = "objective"
CALENDAR = "calendar"  # closed by the daemon when close_after passed
COMMAND = "command"  # closed early by ``okrsync cycle close``


@dataclass(frozen=True)
class CloseReport:
    cycle_id: str
    closed_now: bool  # False: it was closed already (by another replica, a pass, a command)
    closed_at: datetime
    key_results: int = 0
    objectives: int = 0
    finals_queued: int = 0


def closed_in_store(session: Session) -> dict[str, datetime]:
    """Each cycle closed in the store, and when."""
    rows = session.exec(
        select(col(CycleRow.id), col(CycleRow.closed_at)).where(
            col(CycleRow.closed_at).is_not(None)
        )
    )
    return {cycle_id: closed_at for cycle_id, closed_at in rows if closed_at is not None}


def open_metric_names(config: Config, closed: Iterable[str]) -> set[str]:
    """The metrics a key result of a cycle that is not closed reads: only these are fetched."""
    shut = set(closed)
    return {
        name
        for objective in config.objectives
        if objective.cycle not in shut
        for kr in objective.key_results
        for name in kr.metric_names()
    }


def open_key_result_ids(config: Config, closed: Iterable[str]) -> set[str]:
    shut = set(closed)
    return {kr.id for o in config.objectives if o.cycle not in shut for kr in o.key_results}


def key_result_score(kr: KeyResultDef, state: KeyResultRow | None) -> Decimal | None:
    """A key result's score (0-1): the one recorded with its state (the recorder grades every
    value it records, check-ins included), else its value graded now by
    :mod:`okrsync.domain.grading` with the key result's ``stretch`` and rule."""
    if state is None:
        return None
    if state.score is not None:
        return state.score
    try:
        return score(kr.target_spec, state.value, stretch=kr.stretch, rule=kr.grading)
    except ValueError:  # a value the spec cannot grade (the config refuses bad specs)
        return None


@dataclass(frozen=True)
class KeyResultStanding:
    """Where one key result of an objective stands: its state, or none recorded yet."""

    definition: KeyResultDef
    state: KeyResultRow | None
    score: Decimal | None

    @property
    def value(self) -> Decimal | None:
        return self.state.value if self.state is not None else None

    @property
    def progress(self) -> Decimal | None:
        return self.state.progress if self.state is not None else None

    @property
    def status(self) -> str:
        return self.state.status if self.state is not None else "no_data"

    @property
    def confidence(self) -> int | None:
        return self.state.confidence if self.state is not None else None


@dataclass(frozen=True)
class ObjectiveStanding:
    """An objective's key results with the weighted roll-up of their progress and scores."""

    key_results: list[KeyResultStanding]
    progress: Decimal | None
    status: str
    score: Decimal | None


def objective_standing(
    objective: ObjectiveDef, states: dict[str, KeyResultRow], elapsed: Decimal
) -> ObjectiveStanding:
    """``objective`` from its key results' ``states``; its status as at ``elapsed`` of the
    cycle (1 once the cycle is over). Shared by the close-out record and the cycle report."""
    krs = [
        KeyResultStanding(kr, states.get(kr.id), key_result_score(kr, states.get(kr.id)))
        for kr in objective.key_results
    ]
    progress = rollup([Weighted(kr.progress, kr.definition.weight) for kr in krs])
    return ObjectiveStanding(
        key_results=krs,
        progress=progress,
        status=objective_status(progress, elapsed).value,
        score=objective_score([WeightedScore(kr.score, kr.definition.weight) for kr in krs]),
    )


class CycleCloser:
    """Closes the config's cycles in the store: by the calendar (the daemon) or by command."""

    def __init__(self, engine: Engine, config: Config, *, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock

    def closed(self) -> dict[str, datetime]:
        with session_scope(self.engine) as session:
            return closed_in_store(session)

    def close_due(
        self, busy: Collection[str] = ()
    ) -> tuple[list[CloseReport], set[str], datetime | None]:
        """Close every cycle whose grace period is over and that is not closed yet.

        A cycle one of whose key results reads a ``busy`` connection (this process is fetching
        from it) waits for a later pass: the value being fetched is recorded first, so no
        change is queued for a mirror after its final push. Returns what it closed, every
        closed cycle's id (in the store, after this), and when the next cycle of the config
        closes by the calendar (for the daemon's wake-up)."""
        now = self.clock()
        closed = self.closed()
        reports: list[CloseReport] = []
        upcoming: datetime | None = None
        for cycle in sorted(self.config.cycles.values(), key=lambda c: (c.start, c.id)):
            if cycle.id in closed:
                continue
            state = state_at(cycle.span(), now, close_after=cycle.close_after)
            if state is CycleState.CLOSED and self._reads(cycle.id) & set(busy):
                continue  # the run that ends it wakes the daemon again
            if state is CycleState.CLOSED:
                report = self.close(cycle.id, by=CALENDAR)
                reports.append(report)
                closed[cycle.id] = report.closed_at
            else:
                moment = _closes_at(cycle)
                upcoming = moment if upcoming is None else min(upcoming, moment)
        return reports, set(closed), upcoming

    def _reads(self, cycle_id: str) -> set[str]:
        """The connections the key results of ``cycle_id`` read."""
        return {
            self.config.metrics[name].connection
            for o in self.config.objectives
            if o.cycle == cycle_id
            for kr in o.key_results
            for name in kr.metric_names()
            if name in self.config.metrics
        }

    def close(self, cycle_id: str, *, by: str) -> CloseReport:
        """Close ``cycle_id`` now (once): freeze its record, queue its final pushes."""
        cycle = self.config.cycles[cycle_id]
        now = self.clock()
        try:
            with session_scope(self.engine) as session:
                report = self._close(session, cycle, now, by)
        except IntegrityError:  # another process wrote the record first (SQLite)
            with session_scope(self.engine) as session:
                row = session.get(CycleRow, cycle_id)
                at = row.closed_at if row is not None and row.closed_at is not None else now
            return CloseReport(cycle_id, False, at)
        if report.closed_now:
            log.info(
                "cycle_closed",
                cycle=cycle_id,
                by=by,
                key_results=report.key_results,
                objectives=report.objectives,
                finals_queued=report.finals_queued,
            )
            following = [
                o.id for o in self.config.objectives if o.cycle == cycle_id and o.follows_series
            ]
            if following:  # the daemon rolls them over once the calendar closes the cycle
                log.info("cycle_closed_followers_roll_over", cycle=cycle_id, objectives=following)
        return report

    def _close(self, session: Session, cycle: CycleDef, now: datetime, by: str) -> CloseReport:
        row = session.exec(
            select(CycleRow).where(CycleRow.id == cycle.id).with_for_update()
        ).first()
        if row is None:  # definitions not synced yet: the row the close is recorded on
            row = CycleRow(id=cycle.id, start=cycle.start, end=cycle.end)
            session.add(row)
            session.flush()
        elif row.closed_at is not None:
            return CloseReport(cycle.id, False, row.closed_at)
        objectives = [o for o in self.config.objectives if o.cycle == cycle.id]
        kr_ids = sorted(kr.id for o in objectives for kr in o.key_results)
        states = {
            r.id: r
            for r in session.exec(
                select(KeyResultRow)
                .where(col(KeyResultRow.id).in_(kr_ids))
                .order_by(col(KeyResultRow.id))
                .with_for_update()
            )
        }
        records: list[dict[str, object]] = []
        for objective in objectives:
            records.extend(_records(objective, states, now))
        if records:
            session.execute(insert(CycleCloseoutRow.metadata.tables["cycle_closeouts"]), records)
        finals = self._queue_finals(session, objectives, states, now)
        row.closed_at = now
        row.closed_by = by
        session.add(row)
        return CloseReport(
            cycle.id,
            True,
            now,
            key_results=sum(1 for r in records if r["subject"] == KEY_RESULT),
            objectives=len(objectives),
            finals_queued=finals,
        )

    def _queue_finals(
        self,
        session: Session,
        objectives: list[ObjectiveDef],
        states: dict[str, KeyResultRow],
        now: datetime,
    ) -> int:
        """One delivery per live mirror of the cycle's key results, marked final."""
        queued = 0
        policies = {m.key: m.policy for o in objectives for kr in o.key_results for m in kr.mirrors}
        owner = {kr.id: o for o in objectives for kr in o.key_results}
        mirrors = session.exec(
            select(MirrorRow)
            .where(
                col(MirrorRow.key_result_id).in_(sorted(owner)),
                col(MirrorRow.archived_at).is_(None),
            )
            .order_by(col(MirrorRow.key))
        ).all()
        for mirror in mirrors:
            assert mirror.key_result_id is not None
            state = states.get(mirror.key_result_id)
            if state is None:
                continue
            key = idempotency_key(mirror.key, f"final:{owner[mirror.key_result_id].cycle}")
            seq = next_sequence(session, mirror.key)
            if seq is None:
                continue
            objective = owner[mirror.key_result_id]
            kr = next(k for k in objective.key_results if k.id == mirror.key_result_id)
            update = key_result_update(objective, state, now, key)
            update = update.model_copy(update={"final": True, "score": key_result_score(kr, state)})
            policy = policies.get(mirror.key, DeliveryPolicy())
            quiet = DeliveryPolicy(quiet_hours=policy.quiet_hours)
            due = earliest_push(quiet, now, mirror.last_delivered_at)
            session.execute(
                insert(DELIVERY_TABLE), [_delivery(mirror.key, seq, update, None, now, due)]
            )
            queued += 1
        return queued


def _closes_at(cycle: CycleDef) -> datetime:
    return closes_at(cycle.span(), cycle.close_after)


def _records(
    objective: ObjectiveDef, states: dict[str, KeyResultRow], now: datetime
) -> list[dict[str, object]]:
    """The frozen rows of one objective: each key result, then the objective itself."""
    standing = objective_standing(objective, states, ONE)
    rows: list[dict[str, object]] = [
        {
            "cycle_id": objective.cycle,
            "subject": KEY_RESULT,
            "subject_id": kr.definition.id,
            "objective_id": objective.id,
            "title": kr.definition.title,
            "kind": kr.definition.kind.value,
            "position": position,
            "weight": kr.definition.weight,
            "unit": kr.definition.unit,
            "start": kr.definition.start,
            "target": kr.definition.target,
            "value": kr.value,
            "progress": kr.progress,
            "status": kr.status,
            "score": kr.score,
            "confidence": kr.confidence,
            "closed_at": now,
        }
        for position, kr in enumerate(standing.key_results)
    ]
    rows.append(
        {
            "cycle_id": objective.cycle,
            "subject": OBJECTIVE,
            "subject_id": objective.id,
            "objective_id": objective.id,
            "title": objective.title,
            "kind": None,
            "position": 0,
            "weight": objective.weight,
            "unit": None,
            "start": None,
            "target": None,
            "value": None,
            "progress": standing.progress,
            "status": standing.status,
            "score": standing.score,
            "confidence": None,
            "closed_at": now,
        }
    )
    return rows
