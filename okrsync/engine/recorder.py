"""The commit point: measurement + key-result state + outbox rows committed together.

One transaction per key result (:func:`record`, for values set by hand) or per batch of a
pass's key results (:func:`record_all`).

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against (and, when
the mirrors were told the value had gone stale, queues the "confirmed again" delivery).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Table, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from okrsync.domain.evaluate import Evaluation
from okrsync.domain.planner import PlannedKeyResult
from okrsync.domain.precedence import manual_value_stands
from okrsync.engine.grades import CheckInMark, score_for
from okrsync.engine.outbox import STATE_COLUMNS, KeyResultState, Outbox
from okrsync.redaction import Redactor
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow, MeasurementRow


@dataclass(frozen=True)
class Recorded:
    key_result_id: str
    changed: bool
    measurement_id: int | None
    deliveries: int
    error: str | None = None


MEASUREMENT_TABLE: Table = MeasurementRow.metadata.tables["measurements"]

BATCH = 500
"""Key results recorded per transaction by :func:`record_all` (one commit per key result cost
more than the rest of a 10,000 key-result refresh together)."""


def record(
    engine: Engine,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    *,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
    origin: str = "auto",
    note: str | None = None,
    request_key: str | None = None,
    check_in: CheckInMark | None = None,
) -> Recorded:
    """Store one key result's evaluation; queue a delivery per mirror when its value changed.

    ``request_key`` marks the new measurement with the check-in request that made it. The key
    is unique in the store: recording a request a second time, even by another replica at the
    same moment, raises :class:`sqlalchemy.exc.IntegrityError` and rolls everything back.
    ``check_in`` is a manual check-in's confidence, author and whether it sets the value.
    """
    with session_scope(engine) as session:
        (state,) = _locked_states(session, [item.key_result.id])
        pass_ = _Pass(session, run_id, now, redactor, check_in)
        (recorded,) = pass_.record([(state, item, evaluation)], origin, note, request_key)
        return recorded


def record_all(
    engine: Engine,
    evaluated: Sequence[tuple[Evaluation, PlannedKeyResult]],
    *,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
) -> list[Recorded]:
    """Record a pass's evaluations, ``BATCH`` key results per transaction.

    A batch commits its measurements, states and outbox rows together, so a crash keeps the
    guarantee of :func:`record`. If a batch fails for one key result, it is rolled back and
    recorded again one key result per transaction, so the others are kept as before.
    """
    recorded: list[Recorded] = []
    for start in range(0, len(evaluated), BATCH):
        chunk = evaluated[start : start + BATCH]
        try:
            with session_scope(engine) as session:
                states = _locked_states(session, [item.key_result.id for _e, item in chunk])
                work = [(st, item, e) for st, (e, item) in zip(states, chunk, strict=True)]
                done = _Pass(session, run_id, now, redactor).record(work)
        except LookupError:
            done = [
                _record_alone(engine, item, evaluation, run_id=run_id, now=now, redactor=redactor)
                for evaluation, item in chunk
            ]
        recorded += done
    return recorded


def _record_alone(
    engine: Engine,
    item: PlannedKeyResult,
    evaluation: Evaluation,
    *,
    run_id: str | None,
    now: datetime,
    redactor: Redactor,
) -> Recorded:
    """One key result of a batch that failed: a key result missing from the store (the config
    changed under a running pass) is reported as its error, and the others are still kept."""
    try:
        return record(engine, item, evaluation, run_id=run_id, now=now, redactor=redactor)
    except LookupError as exc:
        return Recorded(item.key_result.id, False, None, 0, str(exc))


Work = tuple[KeyResultState, PlannedKeyResult, Evaluation]


@dataclass
class _Pass:
    """Records key results in one transaction with SQLAlchemy Core, a statement per kind of
    work whatever the number of key results: the unchanged ones in one UPDATE, the failed ones in
    one executemany, the changed ones' measurements in one INSERT and their ids in one SELECT,
    their states in one executemany, their deliveries through one
    :class:`~okrsync.engine.outbox.Outbox`."""

    session: Session
    run_id: str | None
    now: datetime
    redactor: Redactor
    check_in: CheckInMark | None = None

    def record(
        self,
        work: Sequence[Work],
        origin: str = "auto",
        note: str | None = None,
        request_key: str | None = None,
    ) -> list[Recorded]:
        results: list[Recorded | None] = []
        confirmed: list[str] = []
        failed: list[dict[str, Any]] = []
        to_queue: list[tuple[int, bool, KeyResultState, PlannedKeyResult, Evaluation]] = []
        for state, item, evaluation in work:
            if not evaluation.ok:
                error = self.redactor.redact(evaluation.error or "no value")
                failed.append({"id": state.id, "last_error": error, "last_error_at": self.now})
                results.append(Recorded(state.id, False, None, 0, error))
                continue
            assert evaluation.value is not None
            if origin == "auto" and state.manual_since is not None:
                if manual_value_stands(
                    item.key_result.check_ins.manual_value,
                    state.held_source_value,
                    evaluation.value,
                ):  # the source says what it said at check-in time: the manual value stands
                    confirmed.append(state.id)
                    results.append(Recorded(state.id, False, state.last_measurement_id, 0))
                    continue
                # the source moved on: its value takes over (recorded even if equal)
                state.manual_since = state.held_source_value = None
                to_queue.append((len(results), False, state, item, evaluation))
                results.append(None)
                continue
            unchanged = _same(state.value, evaluation.value) and origin == "auto"
            if unchanged and state.stale_announced_for is None:
                confirmed.append(state.id)
                results.append(Recorded(state.id, False, state.last_measurement_id, 0))
                continue
            to_queue.append((len(results), unchanged, state, item, evaluation))
            results.append(None)
        if failed:
            self.session.execute(update(KeyResultRow), failed)
        if confirmed:
            self.session.execute(
                update(KeyResultRow)
                .where(col(KeyResultRow.id).in_(confirmed))
                .values(checked_at=self.now, last_error=None)
                .execution_options(synchronize_session=False)
            )
        if to_queue:
            self._queue(results, to_queue, origin, note, request_key)
        return [r for r in results if r is not None]

    def _queue(
        self,
        results: list[Recorded | None],
        to_queue: Sequence[tuple[int, bool, KeyResultState, PlannedKeyResult, Evaluation]],
        origin: str,
        note: str | None,
        request_key: str | None,
    ) -> None:
        """Key results that may queue deliveries: changed values, and stale episodes ending."""
        outbox = Outbox(self.session, self.now)
        outbox.lock(  # their mirrors, in key order, after the key results (see outbox)
            {state.id for _at, _u, state, _i, _e in to_queue},
            {item.objective.id for _at, _u, _s, item, _e in to_queue},
            held=[state for _at, _u, state, _i, _e in to_queue],
        )
        outbox.expect_announcements(
            (item.objective, state.id, state.stale_announced_for, False)
            for _at, _u, state, item, _e in to_queue
            if state.stale_announced_for is not None
        )
        changed: list[tuple[int, KeyResultState, PlannedKeyResult, Evaluation]] = []
        for at, unchanged, state, item, evaluation in to_queue:
            state.checked_at = self.now
            if unchanged:  # and a stale episode ends
                fresh_again = _end_stale_episode(outbox, item, state)
                results[at] = Recorded(state.id, False, state.last_measurement_id, fresh_again)
            else:
                changed.append((at, state, item, evaluation))
        ids = self._insert_measurements(changed, origin, note, request_key)
        for (at, state, item, evaluation), measurement_id in zip(changed, ids, strict=True):
            self._check_in_state(state, item, evaluation, origin)
            state.value = evaluation.value
            state.progress = evaluation.progress
            state.status = evaluation.status.value
            state.observed_at = self.now
            state.last_measurement_id = measurement_id
            queued = outbox.on_change(item.objective, item.cycle, state.id, measurement_id)
            queued += _end_stale_episode(outbox, item, state)
            results[at] = Recorded(state.id, True, measurement_id, queued)
        self._write_states([state for _at, _u, state, _i, _e in to_queue])
        outbox.flush()

    def _insert_measurements(
        self,
        changed: Sequence[tuple[int, KeyResultState, PlannedKeyResult, Evaluation]],
        origin: str,
        note: str | None,
        request_key: str | None,
    ) -> list[int]:
        """The batch's measurements in one INSERT, and their ids (it was one ORM flush each)."""
        if not changed:
            return []
        values = [
            {
                "key_result_id": state.id,
                "value": evaluation.value,
                "progress": evaluation.progress,
                "status": evaluation.status.value,
                "observed_at": self.now,
                "run_id": self.run_id,
                "origin": origin,
                "note": note,
                "request_key": request_key,
                "confidence": None if self.check_in is None else self.check_in.confidence,
                "author": None if self.check_in is None else self.check_in.author,
                "provenance": [self.redactor.redact_value(p) for p in evaluation.provenance],
            }
            for _at, state, _item, evaluation in changed
        ]
        # One executemany, then the ids in one SELECT: no other transaction can add a measurement
        # of these key results now (their rows are locked here), so each key result's newest rows
        # observed at ``now`` are this batch's. (INSERT … RETURNING of 500 rows is one statement
        # of 5,000 parameters, which PostgreSQL took 100-250 ms to run against 35 ms for this.)
        self.session.execute(insert(MEASUREMENT_TABLE), values)
        columns = MEASUREMENT_TABLE.c
        found = self.session.execute(
            core_select(columns.id, columns.key_result_id)
            .where(
                columns.key_result_id.in_({state.id for _at, state, _i, _e in changed}),
                columns.observed_at == self.now,
            )
            .order_by(columns.id)
        )
        ids: dict[str, list[int]] = {}
        for measurement_id, kr_id in found:
            ids.setdefault(kr_id, []).append(int(measurement_id))
        wanted = Counter(state.id for _at, state, _i, _e in changed)
        mine = {kr_id: ids[kr_id][-count:] for kr_id, count in wanted.items()}
        return [mine[state.id].pop(0) for _at, state, _item, _evaluation in changed]

    def _write_states(self, states: Sequence[KeyResultState]) -> None:
        """The new states of the key results that queued, in one executemany."""
        self.session.execute(
            update(KeyResultRow),
            [
                {
                    "id": s.id,
                    "value": s.value,
                    "progress": s.progress,
                    "status": s.status,
                    "observed_at": s.observed_at,
                    "checked_at": s.checked_at,
                    "last_measurement_id": s.last_measurement_id,
                    "last_error": None,
                    "stale_announced_for": s.stale_announced_for,
                    "confidence": s.confidence,
                    "score": s.score,
                    "source_value": s.source_value,
                    "manual_since": s.manual_since,
                    "held_source_value": s.held_source_value,
                }
                for s in states
            ],
        )

    def _check_in_state(
        self, state: KeyResultState, item: PlannedKeyResult, evaluation: Evaluation, origin: str
    ) -> None:
        """The check-in columns of a key result whose value is recorded: the score always; a
        source's value as the source's; a manual value as standing since now, against what the
        source had reported (:mod:`okrsync.domain.precedence`); a check-in's confidence."""
        state.score = score_for(item.key_result, evaluation.value)
        if origin == "auto":
            state.source_value = evaluation.value
            return
        mark = self.check_in
        if mark is None:
            return
        if mark.confidence is not None:
            state.confidence = mark.confidence
        if mark.sets_value and not item.key_result.manual:
            if state.manual_since is None:  # a second check-in keeps the first one's reference
                state.held_source_value = state.source_value
            state.manual_since = self.now


def _end_stale_episode(outbox: Outbox, item: PlannedKeyResult, state: KeyResultState) -> int:
    """A source confirmed a value whose staleness was announced: tell the same mirrors.

    Queued even when the value also changed: ``min_change`` may hold the change back, and the
    mirror must not keep saying "stale". The dispatcher pushes only a mirror's newest row.
    """
    episode = state.stale_announced_for
    if episode is None:
        return 0
    state.stale_announced_for = None
    return outbox.staleness_changed(item.objective, item.cycle, state.id, episode, stale=False)


def _locked_states(session: Session, ids: Sequence[str]) -> list[KeyResultState]:
    """The state of ``ids``, in that order, their rows locked for this transaction (taken in id
    order, so two replicas recording overlapping key results cannot deadlock)."""
    statement = (
        core_select(*STATE_COLUMNS)
        .where(col(KeyResultRow.id).in_(set(ids)))
        .order_by(col(KeyResultRow.id))
        .with_for_update()
    )
    found = {row[0]: KeyResultState(*row) for row in session.execute(statement)}
    missing = [kr_id for kr_id in ids if kr_id not in found]
    if missing:
        raise LookupError(
            f"key result {missing[0]!r} is not in the store; run the definitions sync"
        )
    return [found[kr_id] for kr_id in ids]


def _same(old: Decimal | None, new: Decimal) -> bool:
    return old is not None and old == new
