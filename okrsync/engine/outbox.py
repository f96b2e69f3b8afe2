"""Filling the outbox: one row per mirror that should hear of a key result's or objective's state.

Shared by the recorder (a value changed) and the daemon's scheduled pushes (a mirror's own
cadence, whether or not anything changed). Pacing decides when a row comes due; idempotency keys
are derived from what caused the row, so a re-run after a crash inserts nothing new.

Order: every row queued for a mirror takes the mirror's next sequence number (``mirrors.last_seq``
incremented in place, which locks the mirror's row until the transaction commits), and the state
it carries is read only *after* that, so sequence order is the order in which states were
recorded, across replicas: a transaction that queues later for the same mirror waits for the
earlier one's commit and then reads what it committed. The dispatcher never pushes a row older
than one the mirror has shown (see :mod:`okrsync.engine.dispatcher`).

Locks are taken in one order everywhere — key results (by id), then mirrors (by key), then
deliveries — so two replicas recording overlapping objectives cannot deadlock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from okrsync.config import CycleDef, MirrorDef, ObjectiveDef
from okrsync.engine.pacing import DeliveryPolicy, earliest_push, worth_pushing
from okrsync.engine.progress import display_progress
from okrsync.engine.status import Weighted, elapsed_fraction, objective_status, rollup
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status
from okrsync.store.tables import DeliveryRow, KeyResultRow, MirrorRow
from okrsync.store.views import is_stale

Update = KeyResultUpdate | ObjectiveUpdate


def idempotency_key(mirror_key: str, cause: str) -> str:
    """Stable per (mirror, cause): a measurement id, or a scheduled tick."""
    return hashlib.sha256(f"{mirror_key}#{cause}".encode()).hexdigest()[:40]


def key_result_update(
    objective: ObjectiveDef, row: KeyResultRow, observed_at: datetime, key: str
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
    )


def objective_update(
    session: Session, objective: ObjectiveDef, cycle: CycleDef, now: datetime, key: str
) -> ObjectiveUpdate:
    rows = session.exec(
        select(KeyResultRow)
        .where(KeyResultRow.objective_id == objective.id, col(KeyResultRow.archived_at).is_(None))
        .order_by(col(KeyResultRow.position))
    ).all()
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
    )


def on_change(
    session: Session,
    objective: ObjectiveDef,
    cycle: CycleDef,
    row: KeyResultRow,
    measurement_id: int,
    now: datetime,
) -> int:
    """A key result's value changed: queue it for its mirrors and its objective's digests."""
    kr_defs = {m.key: m for kr in objective.key_results if kr.id == row.id for m in kr.mirrors}
    if not kr_defs and not objective.mirrors:
        return 0  # nothing to tell anyone (mirrors gone from the config are archived)
    cause = str(measurement_id)
    queued = 0
    for mirror in _live(session, MirrorRow.key_result_id == row.id):
        spec = kr_defs.get(mirror.key)
        policy = spec.policy if spec else DeliveryPolicy()
        if not policy.on_change:
            continue
        key = idempotency_key(mirror.key, cause)
        queued += _enqueue(
            session,
            mirror,
            policy,
            _kr_builder(objective, row, now, key),
            measurement_id,
            now,
            check_change=True,
        )
    digest_defs = {m.key: m for m in objective.mirrors}
    if digest_defs:
        for mirror in _live(session, MirrorRow.objective_id == objective.id):
            digest_def = digest_defs.get(mirror.key)
            if digest_def is None or not digest_def.policy.on_change:
                continue
            key = idempotency_key(mirror.key, cause)
            build = _digest_builder(session, objective, cycle, now, key)
            queued += _enqueue(
                session, mirror, digest_def.policy, build, measurement_id, now, check_change=True
            )
    return queued


def staleness_changed(
    session: Session,
    objective: ObjectiveDef,
    cycle: CycleDef,
    row: KeyResultRow,
    episode: datetime,
    now: datetime,
    *,
    stale: bool,
) -> int:
    """A key result went stale (or was confirmed again): tell the mirrors that announce it.

    ``episode`` is the ``checked_at`` that went stale; with the direction it makes the cause of
    the idempotency key, so each announcement is queued once across replicas and restarts. The
    value has not changed, so pacing by change does not apply; quiet hours do.
    """
    cause = f"{'stale' if stale else 'fresh'}:{row.id}:{episode.isoformat()}"
    announcing = {
        m.key: m
        for m in (
            *objective.mirrors,
            *(m for kr in objective.key_results if kr.id == row.id for m in kr.mirrors),
        )
        if m.policy.announce_stale
    }
    if not announcing:
        return 0
    kr_owned = col(MirrorRow.key_result_id) == row.id
    owners = or_(kr_owned, col(MirrorRow.objective_id) == objective.id)
    queued = 0
    for mirror in sorted(_live(session, owners), key=lambda m: m.key):
        spec = announcing.get(mirror.key)
        if spec is None:
            continue
        key = idempotency_key(mirror.key, cause)
        if _queued_already(session, key):
            continue
        build = (
            _digest_builder(session, objective, cycle, now, key)
            if spec.is_digest
            else _kr_builder(objective, row, now, key)
        )
        quiet = DeliveryPolicy(quiet_hours=spec.policy.quiet_hours)
        queued += _enqueue(session, mirror, quiet, build, None, now, check_change=False)
    return queued


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
    if mirror.is_digest:
        build = _digest_builder(session, objective, cycle, now, key)
    else:
        # read only once the mirror's sequence is taken (see the module's docstring), and
        # afresh: a recorder may have committed a newer value since this session last looked
        kr_id = row.key_result_id

        def build() -> Update | None:
            statement = select(KeyResultRow).where(KeyResultRow.id == kr_id)
            kr_row = session.exec(statement.execution_options(populate_existing=True)).first()
            if kr_row is None or kr_row.value is None:
                return None  # nothing to say yet
            return key_result_update(objective, kr_row, now, key)

    quiet = DeliveryPolicy(quiet_hours=mirror.policy.quiet_hours)
    return bool(_enqueue(session, row, quiet, build, None, now, check_change=False))


def lock_mirrors(
    session: Session, key_result_ids: Collection[str], objective_ids: Collection[str]
) -> None:
    """Lock, in key order, every mirror that queueing for these key results may touch: their
    own mirrors and their objectives' digests. Taken up front by a transaction that queues for
    several key results, so replicas recording overlapping objectives lock in one order."""
    if not key_result_ids and not objective_ids:
        return
    session.exec(
        select(MirrorRow.key)
        .where(
            or_(
                col(MirrorRow.key_result_id).in_(sorted(key_result_ids)),
                col(MirrorRow.objective_id).in_(sorted(objective_ids)),
            )
        )
        .order_by(col(MirrorRow.key))
        .with_for_update()
    ).all()


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


def _kr_builder(
    objective: ObjectiveDef, row: KeyResultRow, now: datetime, key: str
) -> Callable[[], Update | None]:
    """For rows this transaction holds locked (the recorder's, the stale watch's)."""
    return lambda: key_result_update(objective, row, now, key)


def _digest_builder(
    session: Session, objective: ObjectiveDef, cycle: CycleDef, now: datetime, key: str
) -> Callable[[], Update | None]:
    return lambda: objective_update(session, objective, cycle, now, key)


def _enqueue(
    session: Session,
    mirror: MirrorRow,
    policy: DeliveryPolicy,
    build: Callable[[], Update | None],
    measurement_id: int | None,
    now: datetime,
    *,
    check_change: bool,
) -> int:
    """Take the mirror's next sequence number, then read the state it will carry (``build``)."""
    seq = next_sequence(session, mirror.key)
    if seq is None:
        return 0  # the mirror's row is gone
    update = build()
    if update is None:
        return 0
    state = (update.progress, update.status.value)
    if check_change and not worth_pushing(policy, _last_queued(session, mirror.key), state):
        return 0
    session.add(
        DeliveryRow(
            mirror_key=mirror.key,
            seq=seq,
            key_result_id=update.key_result_id if isinstance(update, KeyResultUpdate) else None,
            objective_id=update.objective_id if isinstance(update, ObjectiveUpdate) else None,
            measurement_id=measurement_id,
            idempotency_key=update.idempotency_key,
            payload=update.model_dump(mode="json"),
            created_at=now,
            next_attempt_at=earliest_push(policy, now, mirror.last_delivered_at),
        )
    )
    return 1


def _queued_already(session: Session, key: str) -> bool:
    """A delivery with this idempotency key exists (another replica, or an earlier pass)."""
    found = session.exec(select(DeliveryRow.id).where(DeliveryRow.idempotency_key == key))
    return found.first() is not None


def _live(session: Session, owner: Any) -> Sequence[MirrorRow]:
    return session.exec(select(MirrorRow).where(owner, col(MirrorRow.archived_at).is_(None))).all()


def _last_queued(session: Session, mirror_key: str) -> tuple[Decimal | None, str] | None:
    """Progress and status of the newest state sent or waiting to be sent to a mirror."""
    row = session.exec(
        select(DeliveryRow)
        .where(DeliveryRow.mirror_key == mirror_key, DeliveryRow.status != "superseded")
        .order_by(col(DeliveryRow.seq).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    progress = row.payload.get("progress")
    return (None if progress is None else Decimal(progress), str(row.payload.get("status")))
