"""Delivering the outbox: each pending row pushed to its mirror, at least once.

Rows are claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) so that replicas never
push the same row at once, and a dead replica's rows are taken over when the lease expires. Only
the newest pending row of a mirror is pushed; older ones are superseded, since a mirror shows the
current state, not a history. The sink's external reference (message ts, comment id) is stored on
the mirror, so the next push edits what the last one created instead of creating another.

A claim counts as an attempt and is committed before the push starts, so a push a crash cut
short still shows (``attempts > 0``). That is what lets a sink skip looking for something an
earlier attempt may have created: :class:`~okrsync.sdk.connector.PushContext` says
``first_attempt`` only for a mirror with no reference none of whose deliveries was ever claimed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from okrsync.config import MirrorDef
from okrsync.errors import ConnectorError
from okrsync.redaction import Redactor
from okrsync.sdk.connector import PushContext, Sink
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MirrorRow

log = structlog.get_logger()

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CEILING = timedelta(minutes=30)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff for a failed delivery: 5 s, 10 s, 20 s … capped at 30 min."""
    return min(BACKOFF_BASE * (1 << max(attempts - 1, 0)), BACKOFF_CEILING)


@dataclass
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    superseded: int = 0
    errors: list[str] = field(default_factory=list)


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

    async def dispatch_due(self) -> DispatchReport:
        """Push every due delivery; returns what happened. Never raises for a sink's failure."""
        report = DispatchReport()
        while True:
            claimed = self._claim(report)
            if not claimed:
                return report
            await asyncio.gather(*(self._deliver(row, report) for row in claimed))

    def release_leases(self, *, only_mine: bool = False) -> int:
        """Free the leases on pending deliveries: this replica's (at shutdown, so an abandoned
        push is taken up at once), or everyone's (only safe when no other replica can exist)."""
        owner = col(DeliveryRow.lease_owner)
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(DeliveryRow).where(
                    DeliveryRow.status == "pending",
                    owner == self.owner if only_mine else owner.is_not(None),
                )
            ).all()
            for row in rows:
                row.lease_owner = None
                row.lease_until = None
                session.add(row)
        if rows:
            log.info("leases_released", deliveries=len(rows))
        return len(rows)

    def next_due(self) -> datetime | None:
        """When the next pending delivery becomes due (for the daemon's sleep)."""
        with session_scope(self.engine) as session:
            return session.exec(
                select(DeliveryRow.next_attempt_at)
                .where(DeliveryRow.status == "pending")
                .order_by(col(DeliveryRow.next_attempt_at))
                .limit(1)
            ).first()

    def _claim(self, report: DispatchReport) -> list[DeliveryRow]:
        now = self.clock()
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(DeliveryRow)
                .where(
                    DeliveryRow.status == "pending",
                    DeliveryRow.next_attempt_at <= now,
                    or_(col(DeliveryRow.lease_until).is_(None), col(DeliveryRow.lease_until) < now),
                )
                .order_by(col(DeliveryRow.id))
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            newest: dict[str, DeliveryRow] = {}
            for row in rows:
                older = newest.get(row.mirror_key)
                if older is not None:
                    older.status = "superseded"
                    older.lease_owner = None
                    session.add(older)
                    report.superseded += 1
                newest[row.mirror_key] = row
            for key, row in list(newest.items()):
                if key not in self.mirrors:
                    row.status = "superseded"
                    row.last_error = "mirror no longer in the config"
                    row.lease_owner = None
                    session.add(row)
                    report.superseded += 1
                    continue
                row.lease_owner = self.owner
                row.lease_until = now + self.lease
                row.attempts += 1  # committed before the push: a crash mid-push still shows
                session.add(row)
            # rows still pending but older than a newer claimed row of the same mirror
            if newest:
                stale = session.exec(
                    select(DeliveryRow).where(
                        DeliveryRow.status == "pending",
                        col(DeliveryRow.mirror_key).in_(list(newest)),
                        col(DeliveryRow.id).not_in([r.id for r in newest.values()]),
                    )
                ).all()
                for row in stale:
                    if row.id is not None and row.id < (newest[row.mirror_key].id or 0):
                        row.status = "superseded"
                        session.add(row)
                        report.superseded += 1
            return [row for row in newest.values() if row.status == "pending"]

    async def _deliver(self, row: DeliveryRow, report: DispatchReport) -> None:
        mirror = self.mirrors[row.mirror_key]  # _claim superseded rows of removed mirrors
        with session_scope(self.engine) as session:
            mirror_row = session.get(MirrorRow, row.mirror_key)
            previous_ref = mirror_row.external_ref if mirror_row else None
            first = previous_ref is None and not _attempted_before(session, row)
        context = PushContext(previous_ref=previous_ref, first_attempt=first)
        try:
            sink = self.sink_for(mirror.connection)
            update: KeyResultUpdate | ObjectiveUpdate
            if row.objective_id is not None:
                update = ObjectiveUpdate.model_validate(row.payload)
            else:
                update = KeyResultUpdate.model_validate(row.payload)
            result = await sink.deliver(update, mirror.spec, context)
        except ConnectorError as exc:
            self._failed(
                row, exc.for_subject(mirror.connection, f"mirror {row.mirror_key}"), report
            )
            return
        except Exception as exc:  # a sink bug must not stop the other deliveries
            self._failed(row, exc, report)
            return
        self._done(row, result.ref)
        report.delivered += 1
        log.info(
            "delivery_done",
            mirror=row.mirror_key,
            key_result=row.key_result_id,
            objective=row.objective_id,
            attempts=row.attempts,
        )

    def _failed(self, row: DeliveryRow, exc: Exception, report: DispatchReport) -> None:
        message = self.redactor.redact(str(exc) or type(exc).__name__)
        attempts = row.attempts  # this attempt was counted when the row was claimed
        gave_up = attempts >= self.max_attempts
        with session_scope(self.engine) as session:
            stored = session.get(DeliveryRow, row.id)
            if stored is None:
                return
            stored.attempts = attempts
            stored.last_error = message
            stored.lease_owner = None
            stored.lease_until = None
            stored.status = "failed" if gave_up else "pending"
            stored.next_attempt_at = self.clock() + retry_delay(attempts)
            session.add(stored)
        report.failed += 1
        report.gave_up += int(gave_up)
        report.errors.append(message)
        log.warning(
            "delivery_failed",
            mirror=row.mirror_key,
            attempts=attempts,
            gave_up=gave_up,
            error=message,
        )

    def _done(self, row: DeliveryRow, ref: str | None) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            stored = session.get(DeliveryRow, row.id)
            if stored is None:
                return
            stored.status = "done"
            stored.delivered_at = now
            stored.external_ref = ref
            stored.last_error = None
            stored.lease_owner = None
            stored.lease_until = None
            session.add(stored)
            mirror_row = session.get(MirrorRow, row.mirror_key)
            if mirror_row is not None:
                if ref is not None:
                    mirror_row.external_ref = ref
                mirror_row.last_delivered_at = now
                session.add(mirror_row)


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
