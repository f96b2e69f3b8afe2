"""Filling the outbox: one row per mirror that should hear of a key result's or objective's state.

Shared by the recorder (a value changed, a stale episode ended), the stale watch and the daemon's
scheduled pushes (a mirror's own cadence, whether or not anything changed). Pacing decides when a
row comes due; idempotency keys are derived from what caused the row, so a re-run after a crash
inserts nothing new.

Order: every row queued for a mirror takes the mirror's next sequence number (``mirrors.last_seq``,
read and advanced under the mirror row's lock, held until the transaction commits), and the
state it carries is read only *after* that, so sequence order is the order in which states were
recorded, across replicas: a transaction that queues later for the same mirror waits for the
earlier one's commit and then reads what it committed. The dispatcher never pushes a row older
than one the mirror has shown (see :mod:`okrsync.engine.dispatcher`).

Locks are taken in one order everywhere — key results (by id), then mirrors (by key), then
deliveries — so two replicas recording overlapping objectives cannot deadlock. A transaction
that records many key results queues through one :class:`Outbox`: a statement per kind of work
(lock the mirrors, read what payloads need, write sequences, insert deliveries), none per key
result, mirror or delivery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Table, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from okrsync.config import CycleDef, MirrorDef, ObjectiveDef
from okrsync.domain.grading import WeightedScore, objective_score
from okrsync.domain.pacing import DeliveryPolicy, earliest_push, worth_pushing
from okrsync.domain.progress import display_progress
from okrsync.domain.status import Weighted, elapsed_fraction, objective_status, rollup
from okrsync.domain.statuses import DeliveryStatus
from okrsync.engine.work_payloads import WorkPayloads
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status
from okrsync.store.tables import DeliveryRow, KeyResultRow, MirrorRow
from okrsync.store.views import is_stale

Update = KeyResultUpdate | ObjectiveUpdate
DELIVERY_TABLE: Table = DeliveryRow.metadata.tables["deliveries"]  # Core inserts: one executemany


class KeyResultLike(Protocol):
    """What a payload reads of a key result: an ORM row, or a :class:`KeyResultState`."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> Decimal | None: ...
    @property
    def start(self) -> Decimal | None: ...
    @property
    def target(self) -> Decimal | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def progress(self) -> Decimal | None: ...
    @property
    def status(self) -> str: ...
    @property
    def weight(self) -> Decimal: ...
    @property
    def checked_at(self) -> datetime | None: ...
    @property
    def observed_at(self) -> datetime | None: ...
    @property
    def stale_after_seconds(self) -> int | None: ...
    @property
    def confidence(self) -> int | None: ...
    @property
    def score(self) -> Decimal | None: ...


@dataclass
class KeyResultState:
    """A key result's row as plain data (no ORM object), read with :data:`STATE_COLUMNS`."""

    id: str
    objective_id: str
    title: str
    kind: str
    start: Decimal | None
    target: Decimal | None
    unit: str | None
    weight: Decimal
    stale_after_seconds: int | None
    value: Decimal | None
    progress: Decimal | None
    status: str
    observed_at: datetime | None
    checked_at: datetime | None
    last_measurement_id: int | None
    stale_announced_for: datetime | None
    confidence: int | None = None
    score: Decimal | None = None
    source_value: Decimal | None = None
    manual_since: datetime | None = None
    held_source_value: Decimal | None = None


STATE_COLUMNS = (
    col(KeyResultRow.id),
    col(KeyResultRow.objective_id),
    col(KeyResultRow.title),
    col(KeyResultRow.kind),
    col(KeyResultRow.start),
    col(KeyResultRow.target),
    col(KeyResultRow.unit),
    col(KeyResultRow.weight),
    col(KeyResultRow.stale_after_seconds),
    col(KeyResultRow.value),
    col(KeyResultRow.progress),
    col(KeyResultRow.status),
    col(KeyResultRow.observed_at),
    col(KeyResultRow.checked_at),
    col(KeyResultRow.last_measurement_id),
    col(KeyResultRow.stale_announced_for),
    col(KeyResultRow.confidence),
    col(KeyResultRow.score),
    col(KeyResultRow.source_value),
    col(KeyResultRow.manual_since),
    col(KeyResultRow.held_source_value),
)


def idempotency_key(mirror_key: str, cause: str) -> str:
    """Stable per (mirror, cause): a measurement id, or a scheduled tick."""
    return hashlib.sha256(f"{mirror_key}#{cause}".encode()).hexdigest()[:40]


def key_result_update(
    objective: ObjectiveDef, row: KeyResultLike, observed_at: datetime, key: str
) -> KeyResultUpdate:
    return KeyResultUpdate(
        objective_id=objective.id,
        objective_title=objective.title,
        key_result_id=row.id,
        key_result_title=row.title,
        cycle_id=objective.cycle,
        kind=row.kind,
        value=row.value,
        start=row.start,
        target=row.target,
        unit=row.unit,
        progress=row.progress,
        progress_display=None if row.progress is None else display_progress(row.progress),
        status=Status(row.status),
        observed_at=observed_at,
        idempotency_key=key,
        stale=is_stale(row, observed_at),
        checked_at=row.checked_at,
        confidence=row.confidence,
        score=row.score,
    )


def objective_update(
    objective: ObjectiveDef,
    cycle: CycleDef,
    rows: Sequence[KeyResultLike],
    now: datetime,
    key: str,
) -> ObjectiveUpdate:
    """A digest of ``rows``: the objective's live key results in position order."""
    progress = rollup([Weighted(r.progress, r.weight) for r in rows])
    elapsed = elapsed_fraction(cycle.start, cycle.end, now)
    return ObjectiveUpdate(
        objective_id=objective.id,
        objective_title=objective.title,
        cycle_id=objective.cycle,
        owner=objective.owner,
        progress=progress,
        status=objective_status(progress, elapsed),
        observed_at=now,
        idempotency_key=key,
        key_results=tuple(key_result_update(objective, r, now, key) for r in rows),
        score=objective_score([WeightedScore(r.score, r.weight) for r in rows]),
    )


def _live_key_results(session: Session, objective_id: str) -> list[KeyResultRow]:
    return list(
        session.exec(
            select(KeyResultRow)
            .where(
                KeyResultRow.objective_id == objective_id, col(KeyResultRow.archived_at).is_(None)
            )
            .order_by(col(KeyResultRow.position), col(KeyResultRow.id))
            .execution_options(populate_existing=True)
        )
    )


@dataclass
class _Mirror:
    """A mirror's row as this transaction holds it locked."""

    key: str
    key_result_id: str | None
    objective_id: str | None
    live: bool
    last_seq: int
    last_delivered_at: datetime | None


class Outbox:
    """The deliveries one transaction queues, however many key results it records.

    :meth:`lock` locks, in key order, every mirror the key results and objectives may queue for,
    and only then reads what payloads will carry of key results this transaction does not hold
    (a digest's other key results). Each delivery takes its mirror's next sequence number (from
    the locked row) before its payload is built, as :func:`next_sequence` does for one mirror.
    Nothing is written until :meth:`flush`: one UPDATE of the mirrors' sequences and one INSERT
    of the deliveries, whatever their number.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._mirrors: dict[str, _Mirror] = {}
        self._kr_mirrors: dict[str, list[_Mirror]] = {}
        self._objective_mirrors: dict[str, list[_Mirror]] = {}
        self._states: dict[str, KeyResultLike] = {}
        self._digest_members: dict[str, list[str]] = {}  # live key results per objective
        self._last_queued: dict[str, tuple[Decimal | None, str] | None] | None = None
        self._queued_keys: set[str] = set()  # in the store or queued here
        self._looked_up: set[str] = set()  # keys whose presence in the store is known
        self._seq_taken: set[str] = set()
        self._queued_states: dict[str, tuple[Decimal | None, str]] = {}
        self._pending: list[dict[str, Any]] = []
        self._work = WorkPayloads(session, now)  # the linked work payloads carry (issue 15)

    def lock(
        self,
        key_result_ids: Collection[str],
        objective_ids: Collection[str],
        held: Iterable[KeyResultLike] = (),
    ) -> None:
        """Lock every mirror of these key results and of these objectives (digests), in key order.

        ``held`` are key results this transaction holds locked, as it will change them; the live
        key results of objectives with a digest mirror are read after the lock.
        """
        self._states.update({row.id: row for row in held})
        if not key_result_ids and not objective_ids:
            return
        rows = self.session.execute(
            core_select(
                col(MirrorRow.key),
                col(MirrorRow.key_result_id),
                col(MirrorRow.objective_id),
                col(MirrorRow.archived_at),
                col(MirrorRow.last_seq),
                col(MirrorRow.last_delivered_at),
            )
            .where(
                or_(
                    col(MirrorRow.key_result_id).in_(sorted(key_result_ids)),
                    col(MirrorRow.objective_id).in_(sorted(objective_ids)),
                )
            )
            .order_by(col(MirrorRow.key))
            .with_for_update()
        ).all()
        for key, kr_id, objective_id, archived_at, last_seq, delivered_at in rows:
            mirror = _Mirror(key, kr_id, objective_id, archived_at is None, last_seq, delivered_at)
            self._mirrors[key] = mirror
            if not mirror.live:
                continue
            if kr_id is not None:
                self._kr_mirrors.setdefault(kr_id, []).append(mirror)
            if objective_id is not None:
                self._objective_mirrors.setdefault(objective_id, []).append(mirror)
        self._read_digest_members(sorted(self._objective_mirrors))

    def _read_digest_members(self, objective_ids: list[str]) -> None:
        if not objective_ids:
            return
        statement = (
            core_select(*STATE_COLUMNS)
            .where(
                col(KeyResultRow.objective_id).in_(objective_ids),
                col(KeyResultRow.archived_at).is_(None),
            )
            .order_by(
                col(KeyResultRow.objective_id), col(KeyResultRow.position), col(KeyResultRow.id)
            )
        )
        for values in self.session.execute(statement):
            state = KeyResultState(*values)
            self._states.setdefault(state.id, state)  # what this transaction holds wins
            self._digest_members.setdefault(state.objective_id, []).append(state.id)

    def expect_announcements(
        self, items: Iterable[tuple[ObjectiveDef, str, datetime, bool]]
    ) -> None:
        """Look up in one query whether the staleness announcements of ``items`` (objective, key
        result id, episode, stale) were queued already (by another replica, or an earlier pass)."""
        keys = [
            idempotency_key(spec.key, _staleness_cause(kr_id, episode, stale))
            for objective, kr_id, episode, stale in items
            for spec in _announcing(objective, kr_id).values()
        ]
        self._look_up(keys)

    def _look_up(self, keys: Sequence[str]) -> None:
        unknown = sorted(set(keys) - self._looked_up)
        if not unknown:
            return
        found = self.session.execute(
            select(col(DeliveryRow.idempotency_key)).where(
                col(DeliveryRow.idempotency_key).in_(unknown)
            )
        )
        self._queued_keys.update(found.scalars())
        self._looked_up.update(unknown)

    def on_change(
        self, objective: ObjectiveDef, cycle: CycleDef, kr_id: str, measurement_id: int
    ) -> int:
        """A key result's value changed: queue it for its mirrors and its objective's digests."""
        kr_defs = {m.key: m for kr in objective.key_results if kr.id == kr_id for m in kr.mirrors}
        if not kr_defs and not objective.mirrors:
            return 0  # nothing to tell anyone (mirrors gone from the config are archived)
        cause = str(measurement_id)
        queued = 0
        for mirror in self._kr_mirrors.get(kr_id, ()):
            spec = kr_defs.get(mirror.key)
            policy = spec.policy if spec else DeliveryPolicy()
            if not policy.on_change:
                continue
            key = idempotency_key(mirror.key, cause)
            build = self._kr_builder(objective, kr_id, key)
            queued += self._enqueue(mirror, policy, build, measurement_id, check_change=True)
        digest_defs = {m.key: m for m in objective.mirrors}
        if digest_defs:
            for mirror in self._objective_mirrors.get(objective.id, ()):
                digest_def = digest_defs.get(mirror.key)
                if digest_def is None or not digest_def.policy.on_change:
                    continue
                key = idempotency_key(mirror.key, cause)
                build = self._digest_builder(objective, cycle, key)
                queued += self._enqueue(
                    mirror, digest_def.policy, build, measurement_id, check_change=True
                )
        return queued

    def staleness_changed(
        self,
        objective: ObjectiveDef,
        cycle: CycleDef,
        kr_id: str,
        episode: datetime,
        *,
        stale: bool,
    ) -> int:
        """A key result went stale (or was confirmed again): tell the mirrors that announce it.

        ``episode`` is the ``checked_at`` that went stale; with the direction it makes the cause
        of the idempotency key, so each announcement is queued once across replicas and restarts.
        The value has not changed, so pacing by change does not apply; quiet hours do.
        """
        announcing = _announcing(objective, kr_id)
        if not announcing:
            return 0
        cause = _staleness_cause(kr_id, episode, stale)
        owners = {
            m.key: m
            for m in (
                *self._kr_mirrors.get(kr_id, ()),
                *self._objective_mirrors.get(objective.id, ()),
            )
        }
        queued = 0
        for mirror_key in sorted(owners):
            spec = announcing.get(mirror_key)
            if spec is None:
                continue
            key = idempotency_key(mirror_key, cause)
            self._look_up([key])  # one query for all when expect_announcements was told
            if key in self._queued_keys:
                continue
            build = (
                self._digest_builder(objective, cycle, key)
                if spec.is_digest
                else self._kr_builder(objective, kr_id, key)
            )
            quiet = DeliveryPolicy(quiet_hours=spec.policy.quiet_hours)
            queued += self._enqueue(owners[mirror_key], quiet, build, None, check_change=False)
        return queued

    def flush(self) -> None:
        """Write the mirrors' new sequence numbers and the queued deliveries."""
        if self._seq_taken:
            self.session.execute(
                update(MirrorRow),
                [
                    {"key": k, "last_seq": self._mirrors[k].last_seq}
                    for k in sorted(self._seq_taken)
                ],
            )
            self._seq_taken.clear()
        if self._pending:
            # the table, not the ORM class: one executemany (the ORM splits rows whose None
            # columns differ, key results' and digests' deliveries, into a statement per run)
            self.session.execute(insert(DELIVERY_TABLE), self._pending)
            self._pending = []

    def _kr_builder(
        self, objective: ObjectiveDef, kr_id: str, key: str
    ) -> Callable[[], Update | None]:
        return lambda: key_result_update(objective, self._states[kr_id], self.now, key)

    def _digest_builder(
        self, objective: ObjectiveDef, cycle: CycleDef, key: str
    ) -> Callable[[], Update | None]:
        def build() -> Update:
            members = [self._states[i] for i in self._digest_members.get(objective.id, ())]
            return objective_update(objective, cycle, members, self.now, key)

        return build

    def _enqueue(
        self,
        mirror: _Mirror,
        policy: DeliveryPolicy,
        build: Callable[[], Update | None],
        measurement_id: int | None,
        *,
        check_change: bool,
    ) -> int:
        """Take the mirror's next sequence number, then read the state it will carry."""
        mirror.last_seq += 1
        self._seq_taken.add(mirror.key)
        update = build()
        if update is None:
            return 0
        self._work.load({*self._kr_mirrors, *self._states}, self._mirrors)  # once for them all
        update = self._work.with_work(update, mirror.key)
        state = (update.progress, update.status.value)
        previous = self._previous(mirror.key) if policy.min_change is not None else None
        if check_change and not worth_pushing(policy, previous, state):
            return 0
        next_attempt = earliest_push(policy, self.now, mirror.last_delivered_at)
        self._pending.append(
            _delivery(mirror.key, mirror.last_seq, update, measurement_id, self.now, next_attempt)
        )
        self._queued_keys.add(update.idempotency_key)
        self._queued_states[mirror.key] = state
        return 1

    def _previous(self, mirror_key: str) -> tuple[Decimal | None, str] | None:
        """Progress and status of the newest state sent or waiting to be sent to a mirror: queued
        by this transaction, or else in the store (read for every locked mirror in one query)."""
        if mirror_key in self._queued_states:
            return self._queued_states[mirror_key]
        if self._last_queued is None:
            self._last_queued = _last_queued(self.session, sorted(self._mirrors))
        return self._last_queued.get(mirror_key)


def scheduled(
    session: Session,
    mirror: MirrorDef,
    objective: ObjectiveDef,
    cycle: CycleDef,
    tick: datetime,
    now: datetime,
) -> bool:
    """A mirror's schedule came due: queue the current state, changed or not (once per tick)."""
    row = session.get(MirrorRow, mirror.key)
    if row is None or row.archived_at is not None:
        return False
    key = idempotency_key(mirror.key, f"tick:{tick.isoformat()}")
    if _queued_already(session, key):
        return False
    seq = next_sequence(session, mirror.key)
    if seq is None:
        return False  # the mirror's row is gone
    # read only once the mirror's sequence is taken (see the module's docstring), and afresh:
    # a recorder may have committed a newer value since this session last looked
    update: Update | None
    if mirror.is_digest:
        members = _live_key_results(session, objective.id)
        update = objective_update(objective, cycle, members, now, key)
    else:
        statement = select(KeyResultRow).where(KeyResultRow.id == row.key_result_id)
        kr_row = session.exec(statement.execution_options(populate_existing=True)).first()
        if kr_row is None or kr_row.value is None:
            return False  # nothing to say yet
        update = key_result_update(objective, kr_row, now, key)
    update = WorkPayloads(session, now).with_work(update, row.key)
    quiet = DeliveryPolicy(quiet_hours=mirror.policy.quiet_hours)
    next_attempt = earliest_push(quiet, now, row.last_delivered_at)
    session.execute(
        insert(DELIVERY_TABLE), [_delivery(row.key, seq, update, None, now, next_attempt)]
    )
    return True


def staleness_changed(
    session: Session,
    objective: ObjectiveDef,
    cycle: CycleDef,
    row: KeyResultLike,
    episode: datetime,
    now: datetime,
    *,
    stale: bool,
) -> int:
    """One key result went stale (or was confirmed again), ``row`` locked by this transaction:
    see :meth:`Outbox.staleness_changed`."""
    outbox = Outbox(session, now)
    outbox.lock([row.id], [objective.id], held=[row])
    queued = outbox.staleness_changed(objective, cycle, row.id, episode, stale=stale)
    outbox.flush()
    return queued


def next_sequence(session: Session, mirror_key: str) -> int | None:
    """The mirror's next sequence number; its row stays locked until the transaction ends."""
    statement = (
        update(MirrorRow)
        .where(col(MirrorRow.key) == mirror_key)
        .values(last_seq=col(MirrorRow.last_seq) + 1)
        .returning(col(MirrorRow.last_seq))
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar_one_or_none()


def _staleness_cause(kr_id: str, episode: datetime, stale: bool) -> str:
    return f"{'stale' if stale else 'fresh'}:{kr_id}:{episode.isoformat()}"


def _announcing(objective: ObjectiveDef, kr_id: str) -> dict[str, MirrorDef]:
    """The mirrors of a key result and its objective's digests that announce staleness."""
    return {
        m.key: m
        for m in (
            *objective.mirrors,
            *(m for kr in objective.key_results if kr.id == kr_id for m in kr.mirrors),
        )
        if m.policy.announce_stale
    }


def _delivery(
    mirror_key: str,
    seq: int,
    update: Update,
    measurement_id: int | None,
    now: datetime,
    next_attempt_at: datetime,
) -> dict[str, Any]:
    """An outbox row's values."""
    return {
        "mirror_key": mirror_key,
        "seq": seq,
        "key_result_id": update.key_result_id if isinstance(update, KeyResultUpdate) else None,
        "objective_id": update.objective_id if isinstance(update, ObjectiveUpdate) else None,
        "measurement_id": measurement_id,
        "idempotency_key": update.idempotency_key,
        "payload": update.model_dump(mode="json"),
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": next_attempt_at,
    }


def _queued_already(session: Session, key: str) -> bool:
    """A delivery with this idempotency key exists (another replica, or an earlier pass)."""
    found = session.exec(select(DeliveryRow.id).where(DeliveryRow.idempotency_key == key))
    return found.first() is not None


def _last_queued(
    session: Session, mirror_keys: Sequence[str]
) -> dict[str, tuple[Decimal | None, str] | None]:
    """Progress and status of the newest state sent or waiting to be sent to each mirror, in
    one query (each mirror's newest row found through the (mirror_key, seq) index)."""
    if not mirror_keys:
        return {}
    newest = (
        select(col(DeliveryRow.id))
        .where(
            col(DeliveryRow.mirror_key) == col(MirrorRow.key),
            col(DeliveryRow.status) != DeliveryStatus.SUPERSEDED,
        )
        .order_by(col(DeliveryRow.seq).desc(), col(DeliveryRow.id).desc())
        .limit(1)
        .correlate(MirrorRow)
        .scalar_subquery()
    )
    ids = select(newest).where(col(MirrorRow.key).in_(mirror_keys))
    rows = session.execute(
        select(col(DeliveryRow.mirror_key), col(DeliveryRow.payload)).where(
            col(DeliveryRow.id).in_(ids)
        )
    )
    found: dict[str, tuple[Decimal | None, str] | None] = {}
    for mirror_key, payload in rows:
        progress = payload.get("progress")
        found[mirror_key] = (
            None if progress is None else Decimal(progress),
            str(payload.get("status")),
        )
    return found
