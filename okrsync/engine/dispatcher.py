"""Delivering the outbox: each pending row pushed to its mirror, at least once, in order.

A mirror shows a state, not a history, and never an older state after a newer one. So:

- **One push in flight per mirror**, across replicas: a delivery is claimed together with a lease
  on its mirror's row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, then ``lease_owner``/
  ``lease_until``); a mirror leased by anyone, this process included, is left alone until the
  lease is given back or runs out (a dead replica's mirrors are taken over then).
- **Only the newest row is pushed**: rows carry the mirror's sequence (the order their states
  were recorded in, see :mod:`okrsync.engine.outbox`); at claim time every pending row older than
  the mirror's newest is ``superseded``, and so is the newest if the mirror already shows as new
  a state (``mirrors.delivered_seq``).
- **Checked again under the lease** just before the push: a row whose mirror has meanwhile shown
  a newer state ends ``superseded``, never pushed; a lease lost meanwhile means no push at all.
- **The lease is liveness, the push timeout is patience**: while a push is in flight its
  replica renews the lease every third of it, so a push may wait on a vendor's pace for longer
  than a lease (a hundred new messages in one Slack channel) without anyone else pushing to that
  mirror, and a dead replica's mirrors are free one lease (plus the settle time) after it died.
  A push is cut after ``push_timeout`` and counts as a failed attempt.
- **A slow vendor delays only itself**: every push is its own task; the dispatcher claims more
  due rows as pushes end, when nudged, and every second meanwhile, so one hung mirror holds no
  other.
- **A push that may still land is given time to**: a vendor usually finishes a request it
  received even when the client has gone (a cut push, a timeout, a 502 from its proxy, a replica
  killed mid-push). So a mirror's lease that was not given back as finished — it ran out (its
  holder died), it was released at shutdown or start, or its push failed that way — keeps the
  mirror for a settle time (:func:`settle_time`) past its end before anyone pushes to it again
  or, for a sink that creates things, looks for what the lost push created. A push that ended
  (done, or the vendor's own error answer) frees the mirror at once.

Every store call is made in a worker thread (:func:`okrsync.store.offload.in_thread`), never on
the event loop, each a whole transaction as before, and one at a time per dispatcher, as when they
ran on the loop (two pushes to one mirror-only connection that end together would otherwise both
create its health row): the methods that touch the store are plain functions, and the async ones
await their turn (:meth:`Dispatcher._in_turn`). What a call finds out for the report (rows
superseded, failures) it counts on a report of its own, added to the pass's on the loop.

The sink's external reference (message ts, comment id) is stored on the mirror, so the next push
edits what the last one created instead of creating another.

A claim counts as an attempt and is committed before the push starts, so a push a crash cut
short still shows (``attempts > 0``). That is what lets a sink skip looking for something an
earlier attempt may have created: :class:`~okrsync.sdk.connector.PushContext` says
``first_attempt`` only for a mirror with no reference none of whose deliveries was ever claimed.

A connection that is only ever a mirror (a webhook, say) has no fetch to judge it by, so its
health row follows its deliveries: ``ok`` after one succeeds, ``failing`` with the error after one
fails.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy import Engine, func, or_, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col, select

from okrsync.config import MirrorDef
from okrsync.domain.backoff import capped_exponential
from okrsync.domain.statuses import DeliveryStatus
from okrsync.engine.health import ConnectionHealth
from okrsync.errors import ConnectorError, RateLimitedError, RetriableError
from okrsync.redaction import Redactor
from okrsync.sdk.connector import PushContext, Sink
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate
from okrsync.store.db import session_scope
from okrsync.store.offload import in_thread
from okrsync.store.tables import DeliveryRow, MirrorRow

log = structlog.get_logger()

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CEILING = timedelta(minutes=30)
SETTLE_CEILING = timedelta(seconds=15)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff for a failed delivery: 5 s, 10 s, 20 s … capped at 30 min."""
    seconds = capped_exponential(
        attempts - 1, BACKOFF_BASE.total_seconds(), BACKOFF_CEILING.total_seconds()
    )
    return timedelta(seconds=seconds)


def settle_time(lease: timedelta) -> timedelta:
    """How long a mirror stays quiet after a push that may still land: as long as a push may
    take (the lease), 15 s at the most — vendors finish what they received within seconds."""
    return min(SETTLE_CEILING, lease)


@dataclass
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    superseded: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchReport) -> None:
        """Count ``other``'s figures in too (a store call's, made in a worker thread)."""
        self.delivered += other.delivered
        self.failed += other.failed
        self.gave_up += other.gave_up
        self.superseded += other.superseded
        self.errors += other.errors


@dataclass(frozen=True)
class _Claimed:
    row: DeliveryRow


CLAIM_POLL = 1.0  # seconds between claims while pushes are in flight and nothing else wakes us

P = ParamSpec("P")
T = TypeVar("T")


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        sink_for: Callable[[str], Sink[Any, Any]],
        mirrors: Mapping[str, MirrorDef],
        redactor: Redactor,
        owner: str,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 8,
        batch: int = 100,
        clock: Callable[[], datetime],
        mirror_only: Mapping[str, str] | None = None,
        push_timeout: timedelta = timedelta(minutes=5),
    ) -> None:
        self.engine = engine
        self.sink_for = sink_for
        self.mirrors = mirrors
        self.redactor = redactor
        self.owner = owner
        self.lease = lease
        self.max_attempts = max_attempts
        self.batch = batch
        self.clock = clock
        # connection name -> type, for connections that are only ever mirrors (see the docstring)
        self.mirror_only = dict(mirror_only or {})
        self.health = ConnectionHealth(engine, self.mirror_only, clock=clock, redactor=redactor)
        self.settle = settle_time(lease)
        self.push_timeout = push_timeout
        # one store call at a time, per event loop (an asyncio lock belongs to one loop)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def _in_turn(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, after this dispatcher's other store calls
        (see the module docstring)."""
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = asyncio.Lock()
        async with turn:
            return await in_thread(fn, *args, **kwargs)

    async def dispatch_due(self, wake: asyncio.Event | None = None) -> DispatchReport:
        """Push every due delivery, each in its own task, claiming more as pushes end, when
        ``wake`` is set, and every :data:`CLAIM_POLL` seconds; returns once nothing is due and
        nothing in flight. Never raises for a sink's failure. Leases of the mirrors in flight
        are renewed meanwhile."""
        report = DispatchReport()
        pushes: dict[asyncio.Task[None], str] = {}
        renewer = asyncio.create_task(self._renew_while(pushes), name="lease-renewer")
        try:
            while True:
                if wake is not None:
                    wake.clear()
                room = self.batch - len(pushes)
                for claimed in await self._claim_off_loop(report, room) if room > 0 else []:
                    task = asyncio.create_task(self._deliver(claimed, report))
                    pushes[task] = claimed.row.mirror_key
                if not pushes:
                    return report
                waiters: set[asyncio.Future[Any]] = set(pushes)
                woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
                if woken is not None:
                    waiters.add(woken)
                try:
                    done, _ = await asyncio.wait(
                        waiters, timeout=CLAIM_POLL, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if woken is not None:
                        woken.cancel()
                for finished in done:
                    if finished in pushes:
                        del pushes[finished]
                        finished.result()  # _deliver handles a sink's failures; a bug is raised
        finally:
            renewer.cancel()
            for task in pushes:
                task.cancel()
            await asyncio.gather(renewer, *pushes, return_exceptions=True)

    async def _claim_off_loop(self, report: DispatchReport, limit: int) -> list[_Claimed]:
        found = DispatchReport()
        claimed = await self._in_turn(self._claim, found, limit=limit)
        report.add(found)
        return claimed

    async def _renew_while(self, pushes: Mapping[asyncio.Task[None], str]) -> None:
        """Every third of a lease, extend the leases of the mirrors being pushed to."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            keys = sorted(set(pushes.values()))
            if not keys:
                continue
            try:
                await self._in_turn(self._renew, keys)
            except (OperationalError, InterfaceError) as exc:  # the store is away for a while
                log.warning("lease_renewal_failed", mirrors=len(keys), error=str(exc.orig))

    def _renew(self, keys: list[str]) -> None:
        until = self.clock() + self.lease
        with session_scope(self.engine) as session:
            session.execute(
                update(MirrorRow)
                .where(col(MirrorRow.key).in_(keys), col(MirrorRow.lease_owner) == self.owner)
                .values(lease_until=until)
            )
            session.execute(
                update(DeliveryRow)
                .where(
                    col(DeliveryRow.mirror_key).in_(keys),
                    col(DeliveryRow.lease_owner) == self.owner,
                    col(DeliveryRow.status) == "pending",
                )
                .values(lease_until=until)
            )

    def release_leases(self, *, only_mine: bool = False) -> int:
        """Free the leases on pending deliveries, and those on mirrors after their settle time:
        this replica's (at shutdown and at start, so an abandoned push is taken up without
        waiting out the lease), or everyone's (only safe when no other replica can exist).
        Returns how many deliveries were freed."""
        owner = col(DeliveryRow.lease_owner)
        mirror_owner = col(MirrorRow.lease_owner)
        with session_scope(self.engine) as session:
            mirrors = session.exec(
                select(MirrorRow)
                .where(mirror_owner == self.owner if only_mine else mirror_owner.is_not(None))
                .order_by(col(MirrorRow.key))
                .with_for_update()
            ).all()
            now = self.clock()
            for mirror in mirrors:
                if mirror.lease_until is None or mirror.lease_until > now:
                    mirror.lease_until = now  # ends now; then settles (a push may still land)
                    session.add(mirror)
            rows = session.exec(
                select(DeliveryRow).where(
                    DeliveryRow.status == DeliveryStatus.PENDING,
                    owner == self.owner if only_mine else owner.is_not(None),
                )
            ).all()
            for row in rows:
                row.lease_owner = None
                row.lease_until = None
                session.add(row)
        if rows or mirrors:
            log.info("leases_released", deliveries=len(rows), mirrors=len(mirrors))
        return len(rows)

    async def next_due_off_loop(self) -> datetime | None:
        """:meth:`next_due`, in its turn."""
        return await self._in_turn(self.next_due)

    def next_due(self) -> datetime | None:
        """When the next pending delivery becomes due (for the daemon's sleep)."""
        with session_scope(self.engine) as session:
            return session.exec(
                select(DeliveryRow.next_attempt_at)
                .where(DeliveryRow.status == DeliveryStatus.PENDING)
                .order_by(col(DeliveryRow.next_attempt_at))
                .limit(1)
            ).first()

    # --- claiming -----------------------------------------------------------------------------

    def _claim(self, report: DispatchReport, limit: int | None = None) -> list[_Claimed]:
        """Lease up to ``limit`` (``batch``) mirrors with a due delivery, and each one's newest
        row."""
        now = self.clock()
        free = or_(
            col(MirrorRow.lease_owner).is_(None),
            col(MirrorRow.lease_until).is_(None),
            col(MirrorRow.lease_until) < now - self.settle,  # not given back: settled first
        )
        with session_scope(self.engine) as session:
            due = session.exec(
                select(DeliveryRow.mirror_key)
                .where(
                    DeliveryRow.status == DeliveryStatus.PENDING, DeliveryRow.next_attempt_at <= now
                )
                .group_by(col(DeliveryRow.mirror_key))
                .order_by(func.min(DeliveryRow.id))
                .limit(self.batch if limit is None else limit)
            ).all()
            if not due:
                return []
            mirrors = session.exec(
                select(MirrorRow)
                .where(col(MirrorRow.key).in_(due), free)
                .order_by(col(MirrorRow.key))
                .with_for_update(skip_locked=True)
            ).all()
            pending = session.exec(
                select(DeliveryRow)
                .where(
                    col(DeliveryRow.mirror_key).in_([m.key for m in mirrors]),
                    DeliveryRow.status == DeliveryStatus.PENDING,
                )
                .order_by(col(DeliveryRow.mirror_key), col(DeliveryRow.seq).desc())
            ).all()
            by_mirror: dict[str, list[DeliveryRow]] = {}
            for row in pending:
                by_mirror.setdefault(row.mirror_key, []).append(row)
            claimed: list[_Claimed] = []
            for mirror in mirrors:
                rows = by_mirror.get(mirror.key, [])
                if not rows:
                    continue  # delivered meanwhile by whoever held the mirror
                newest, older = rows[0], rows[1:]
                for row in older:
                    _supersede(session, row, f"a newer state (#{newest.seq}) is queued", report)
                if mirror.key not in self.mirrors:
                    _supersede(session, newest, "mirror no longer in the config", report)
                    continue
                if newest.seq <= mirror.delivered_seq:
                    shown = f"the mirror shows a newer state (#{mirror.delivered_seq})"
                    _supersede(session, newest, shown, report)
                    continue
                if newest.next_attempt_at > now:
                    continue  # paced or backing off; the older ones are gone already
                lease_until = now + self.lease
                mirror.lease_owner = self.owner
                mirror.lease_until = lease_until
                session.add(mirror)
                newest.lease_owner = self.owner
                newest.lease_until = lease_until
                newest.attempts += 1  # committed before the push: a crash mid-push still shows
                session.add(newest)
                claimed.append(_Claimed(newest))
            return claimed

    def _context(self, claimed: _Claimed, report: DispatchReport) -> PushContext | None:
        """Under the lease, just before the push: nothing newer shown and the lease still ours
        (else None: no push); then what the sink should know of earlier pushes."""
        row = claimed.row
        with session_scope(self.engine) as session:
            mirror = session.get(MirrorRow, row.mirror_key)
            if mirror is None or mirror.lease_owner != self.owner:
                log.warning("delivery_lease_lost", mirror=row.mirror_key, seq=row.seq)
                return None
            if mirror.delivered_seq >= row.seq:
                stored = session.get(DeliveryRow, row.id)
                if stored is not None and stored.status == DeliveryStatus.PENDING:
                    shown = f"the mirror shows a newer state (#{mirror.delivered_seq})"
                    _supersede(session, stored, shown, report)
                mirror.lease_owner = None
                mirror.lease_until = None
                session.add(mirror)
                return None
            previous_ref = mirror.external_ref
            first = previous_ref is None and not _attempted_before(session, row)
            return PushContext(previous_ref=previous_ref, first_attempt=first)

    # --- pushing ------------------------------------------------------------------------------

    async def _deliver(self, claimed: _Claimed, report: DispatchReport) -> None:
        row = claimed.row
        mirror = self.mirrors[row.mirror_key]  # _claim superseded rows of removed mirrors
        found = DispatchReport()
        context = await self._in_turn(self._context, claimed, found)
        report.add(found)
        if context is None:
            return
        deadline = self.push_timeout.total_seconds()
        try:
            sink = self.sink_for(mirror.connection)
            update: KeyResultUpdate | ObjectiveUpdate
            if row.objective_id is not None:
                update = ObjectiveUpdate.model_validate(row.payload)
            else:
                update = KeyResultUpdate.model_validate(row.payload)
            result = await asyncio.wait_for(sink.deliver(update, mirror.spec, context), deadline)
        except TimeoutError:
            error = RetriableError(
                f"no answer within {deadline:g}s (push_timeout_seconds); will retry",
                connection=mirror.connection,
            )
            await self._failed_off_loop(
                row, error.for_subject(mirror.connection, _subject(row)), report
            )
            return
        except ConnectorError as exc:
            await self._failed_off_loop(
                row, exc.for_subject(mirror.connection, _subject(row)), report
            )
            return
        except Exception as exc:  # a sink bug must not stop the other deliveries
            await self._failed_off_loop(row, exc, report)
            return
        await self._in_turn(self._done, row, result.ref)
        report.delivered += 1
        log.info(
            "delivery_done",
            mirror=row.mirror_key,
            seq=row.seq,
            key_result=row.key_result_id,
            objective=row.objective_id,
            attempts=row.attempts,
        )

    async def _failed_off_loop(
        self, row: DeliveryRow, exc: Exception, report: DispatchReport
    ) -> None:
        found = DispatchReport()
        await self._in_turn(self._failed, row, exc, found)
        report.add(found)

    def _failed(self, row: DeliveryRow, exc: Exception, report: DispatchReport) -> None:
        message = self.redactor.redact(str(exc) or type(exc).__name__)
        attempts = row.attempts  # this attempt was counted when the row was claimed
        gave_up = attempts >= self.max_attempts
        now = self.clock()
        with session_scope(self.engine) as session:
            mirror = self._release_mirror(session, row.mirror_key, ended=not _may_still_land(exc))
            stored = session.get(DeliveryRow, row.id)
            if stored is None:
                return
            stored.attempts = attempts
            stored.last_error = message
            stored.lease_owner = None
            stored.lease_until = None
            if stored.status == DeliveryStatus.PENDING:
                stored.status = DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING
                stored.next_attempt_at = now + retry_delay(attempts)
            session.add(stored)
            if mirror is not None:
                self.health.record_push(session, mirror.connection, now, error=message)
        report.failed += 1
        report.gave_up += int(gave_up)
        report.errors.append(message)
        log.warning(
            "delivery_failed",
            mirror=row.mirror_key,
            seq=row.seq,
            attempts=attempts,
            gave_up=gave_up,
            error=message,
        )

    def _done(self, row: DeliveryRow, ref: str | None) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            mirror = self._release_mirror(session, row.mirror_key)
            stored = session.get(DeliveryRow, row.id)
            if stored is None:
                return
            stored.status = DeliveryStatus.DONE
            stored.delivered_at = now
            stored.external_ref = ref
            stored.last_error = None
            stored.lease_owner = None
            stored.lease_until = None
            session.add(stored)
            if mirror is None:
                return
            if ref is not None:
                mirror.external_ref = ref
            mirror.last_delivered_at = now
            if row.seq < mirror.delivered_seq:
                # Our push landed after a newer one (only if our lease ran out mid-push, say the
                # process stalled): the mirror shows ours now; push the newer state again.
                newer, mirror.delivered_seq = mirror.delivered_seq, row.seq
                _requeue(session, mirror.key, newer, now)
            else:
                mirror.delivered_seq = row.seq
            session.add(mirror)
            self.health.record_push(session, mirror.connection, now, error=None)

    def _release_mirror(
        self, session: Session, key: str, *, ended: bool = True
    ) -> MirrorRow | None:
        """The mirror's row, locked first (mirrors before deliveries, as everywhere), its lease
        given back if it is still ours: as finished (``ended``), or ending now, so that the
        mirror settles first (a push that may still land)."""
        mirror = session.exec(
            select(MirrorRow).where(MirrorRow.key == key).with_for_update()
        ).one_or_none()
        if mirror is not None and mirror.lease_owner == self.owner:
            mirror.lease_owner = None if ended else self.owner
            mirror.lease_until = None if ended else self.clock()
            session.add(mirror)
        return mirror


GATEWAY_STATUSES = frozenset({502, 504})  # a proxy's answer: the vendor may have done it


def _may_still_land(exc: Exception) -> bool:
    """Whether a failed push may yet take effect at the vendor: no answer came (our cut at the
    lease, a timeout, a reset connection) or only a gateway's. A vendor's own error answer
    (4xx, 500, 503) ends the request: nothing is in flight."""
    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, RetriableError) and not isinstance(exc, RateLimitedError):
        return exc.status_code is None or exc.status_code in GATEWAY_STATUSES
    return False


def _subject(row: DeliveryRow) -> str:
    return f"mirror {row.mirror_key}"


def _supersede(session: Session, row: DeliveryRow, why: str, report: DispatchReport) -> None:
    row.status = DeliveryStatus.SUPERSEDED
    row.last_error = why
    row.lease_owner = None
    row.lease_until = None
    session.add(row)
    report.superseded += 1


def _requeue(session: Session, mirror_key: str, seq: int, now: datetime) -> None:
    row = session.exec(
        select(DeliveryRow).where(DeliveryRow.mirror_key == mirror_key, DeliveryRow.seq == seq)
    ).first()
    if row is None:
        return
    row.status = DeliveryStatus.PENDING
    row.next_attempt_at = now
    session.add(row)
    log.warning("mirror_order_repaired", mirror=mirror_key, seq=seq)


def _attempted_before(session: Session, row: DeliveryRow) -> bool:
    """Whether a push to ``row``'s mirror may have been made before this claim of ``row``.

    An earlier claim of this row, or any claim of another delivery of the same mirror (one
    superseded since, perhaps after a crash cut its push short), counts.
    """
    if row.attempts > 1:
        return True
    earlier = session.exec(
        select(DeliveryRow.id)
        .where(
            DeliveryRow.mirror_key == row.mirror_key,
            col(DeliveryRow.attempts) > 0,
            col(DeliveryRow.id) != row.id,
        )
        .limit(1)
    ).first()
    return earlier is not None
