"""The commit point: measurement + key-result state + outbox rows committed together.

One transaction per key result (:func:`record`, for values set by hand) or per batch of a
pass's key results (:func:`record_all`).

A crash before the commit loses nothing that was stored; a crash after it leaves outbox rows that
the dispatcher delivers on restart. A value that did not change creates no measurement and no
delivery; it only moves ``checked_at``, which is what staleness is measured against (and, when
the mirrors were told the value had gone stale, queues the "confirmed again" delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, update
from sqlmodel import Session, col, select

from okrsync.engine.evaluate import Evaluation
from okrsync.engine.outbox import lock_mirrors, on_change, staleness_changed
from okrsync.engine.planner import PlannedKeyResult
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
) -> Recorded:
    """Store one key result's evaluation; queue a delivery per mirror when its value changed.

    ``request_key`` marks the new measurement with the check-in request that made it. The key
    is unique in the store: recording a request a second time, even by another replica at the
    same moment, raises :class:`sqlalchemy.exc.IntegrityError` and rolls everything back.
    """
    with session_scope(engine) as session:
        (state,) = _locked_states(session, [item.key_result.id])
        pass_ = _Pass(session, run_id, now, redactor)
        (recorded,) = pass_.record([(state, item, evaluation)], origin, note)
        if request_key is not None and recorded.changed:
            session.execute(
                update(MeasurementRow)
                .where(col(MeasurementRow.id) == recorded.measurement_id)
                .values(request_key=request_key)
                .execution_options(synchronize_session=False)
            )
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


@dataclass(frozen=True)
class _State:
    """What recording needs to know of a key result before deciding anything (no ORM object:
    most readings of a refresh change nothing, and those cost one UPDATE for the batch)."""

    id: str
    value: Decimal | None
    last_measurement_id: int | None
    stale_announced_for: datetime | None


Work = tuple[_State, PlannedKeyResult, Evaluation]


@dataclass
class _Pass:
    """Records key results in one transaction: the unchanged ones in one UPDATE, the failed
    ones in one executemany, the changed ones' measurements in one INSERT."""

    session: Session
    run_id: str | None
    now: datetime
    redactor: Redactor

    def record(
        self, work: Sequence[Work], origin: str = "auto", note: str | None = None
    ) -> list[Recorded]:
        results: list[Recorded | None] = []
        confirmed: list[str] = []
        failed: list[dict[str, Any]] = []
        to_load: list[tuple[int, bool, PlannedKeyResult, Evaluation]] = []
        for state, item, evaluation in work:
            if not evaluation.ok:
                error = self.redactor.redact(evaluation.error or "no value")
                failed.append({"id": state.id, "last_error": error, "last_error_at": self.now})
                results.append(Recorded(state.id, False, None, 0, error))
                continue
            assert evaluation.value is not None
            unchanged = _same(state.value, evaluation.value) and origin == "auto"
            if unchanged and state.stale_announced_for is None:
                confirmed.append(state.id)
                results.append(Recorded(state.id, False, state.last_measurement_id, 0))
                continue
            to_load.append((len(results), unchanged, item, evaluation))
            results.append(None)
        if to_load:  # they may queue deliveries: lock their mirrors in key order first
            lock_mirrors(
                self.session,
                {item.key_result.id for _at, _u, item, _e in to_load},
                {item.objective.id for _at, _u, item, _e in to_load},
            )
        rows = self._rows([item.key_result.id for _at, _u, item, _e in to_load])
        changed: list[tuple[int, KeyResultRow, PlannedKeyResult, Evaluation]] = []
        for at, unchanged, item, evaluation in to_load:
            row = rows[item.key_result.id]
            row.checked_at = self.now
            row.last_error = None
            if unchanged:  # and a stale episode ends
                fresh_again = _end_stale_episode(self.session, item, row, self.now)
                results[at] = Recorded(row.id, False, row.last_measurement_id, fresh_again)
            else:
                changed.append((at, row, item, evaluation))
        if failed:
            self.session.execute(update(KeyResultRow), failed)
        if confirmed:
            self.session.execute(
                update(KeyResultRow)
                .where(col(KeyResultRow.id).in_(confirmed))
                .values(checked_at=self.now, last_error=None)
                .execution_options(synchronize_session=False)
            )
        if changed:
            ids = self._insert_measurements(changed, origin, note)
            for (at, row, item, evaluation), measurement_id in zip(changed, ids, strict=True):
                results[at] = self._changed(row, item, evaluation, measurement_id)
        return [r for r in results if r is not None]

    def _rows(self, ids: list[str]) -> dict[str, KeyResultRow]:
        """The ORM rows of ``ids`` in one SELECT (already locked by this transaction)."""
        if not ids:
            return {}
        statement = select(KeyResultRow).where(col(KeyResultRow.id).in_(ids))
        return {row.id: row for row in self.session.exec(statement)}

    def _insert_measurements(
        self,
        changed: Sequence[tuple[int, KeyResultRow, PlannedKeyResult, Evaluation]],
        origin: str,
        note: str | None,
    ) -> list[int]:
        """One INSERT … RETURNING for the batch (it was one ORM flush per key result)."""
        values = [
            {
                "key_result_id": item.key_result.id,
                "value": evaluation.value,
                "progress": evaluation.progress,
                "status": evaluation.status.value,
                "observed_at": self.now,
                "run_id": self.run_id,
                "origin": origin,
                "note": note,
                "provenance": [self.redactor.redact_value(p) for p in evaluation.provenance],
            }
            for _at, _row, item, evaluation in changed
        ]
        statement = insert(MeasurementRow).returning(
            col(MeasurementRow.id), sort_by_parameter_order=True
        )
        return [int(i) for i in self.session.execute(statement, values).scalars()]

    def _changed(
        self, row: KeyResultRow, item: PlannedKeyResult, evaluation: Evaluation, measurement: int
    ) -> Recorded:
        row.value = evaluation.value
        row.progress = evaluation.progress
        row.status = evaluation.status.value
        row.observed_at = self.now
        row.last_measurement_id = measurement
        queued = on_change(self.session, item.objective, item.cycle, row, measurement, self.now)
        queued += _end_stale_episode(self.session, item, row, self.now)
        return Recorded(item.key_result.id, True, measurement, queued)


def _end_stale_episode(
    session: Session, item: PlannedKeyResult, row: KeyResultRow, now: datetime
) -> int:
    """A source confirmed a value whose staleness was announced: tell the same mirrors.

    Queued even when the value also changed: ``min_change`` may hold the change back, and the
    mirror must not keep saying "stale". The dispatcher pushes only a mirror's newest row.
    """
    episode = row.stale_announced_for
    if episode is None:
        return 0
    row.stale_announced_for = None
    return staleness_changed(session, item.objective, item.cycle, row, episode, now, stale=False)


def _locked_states(session: Session, ids: Sequence[str]) -> list[_State]:
    """The state of ``ids``, in that order, their rows locked for this transaction (taken in id
    order, so two replicas recording overlapping key results cannot deadlock)."""
    statement = (
        select(
            col(KeyResultRow.id),
            col(KeyResultRow.value),
            col(KeyResultRow.last_measurement_id),
            col(KeyResultRow.stale_announced_for),
        )
        .where(col(KeyResultRow.id).in_(set(ids)))
        .order_by(col(KeyResultRow.id))
        .with_for_update()
    )
    found = {row[0]: _State(*row) for row in session.exec(statement)}
    missing = [kr_id for kr_id in ids if kr_id not in found]
    if missing:
        raise LookupError(
            f"key result {missing[0]!r} is not in the store; run the definitions sync"
        )
    return [found[kr_id] for kr_id in ids]


def _same(old: Decimal | None, new: Decimal) -> bool:
    return old is not None and old == new
