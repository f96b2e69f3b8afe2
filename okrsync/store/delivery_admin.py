"""What ``okrsync deliveries`` reads and changes in the outbox: a list, and a failed one retried.

A retry puts a delivery the dispatcher gave up on back to ``pending``, due now. Its attempts are
kept: they are what tells a sink that an earlier push may have created something at the vendor
(:func:`okrsync.engine.dispatcher._attempted_before`), and forgetting them could post twice. So
a retried delivery gets one more attempt; failing again, it is ``failed`` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from okrsync.domain.statuses import DeliveryStatus
from okrsync.store.tables import DeliveryRow

LISTED = (DeliveryStatus.FAILED, DeliveryStatus.PENDING)


def deliveries(session: Session, status: DeliveryStatus | None, limit: int) -> list[DeliveryRow]:
    """Failed and pending deliveries (or those of one status), oldest first."""
    wanted = (status,) if status is not None else LISTED
    return list(
        session.exec(
            select(DeliveryRow)
            .where(col(DeliveryRow.status).in_([s.value for s in wanted]))
            .order_by(col(DeliveryRow.id))
            .limit(limit)
        ).all()
    )


@dataclass(frozen=True)
class RetryOutcome:
    found: bool
    retried: bool
    status: str | None = None  # what it is, when it was not failed


def retry(session: Session, delivery_id: int, now: datetime) -> RetryOutcome:
    """A failed delivery back to pending, due at ``now``; anything else is left as it is."""
    row = session.get(DeliveryRow, delivery_id, with_for_update=True)
    if row is None:
        return RetryOutcome(found=False, retried=False)
    if row.status != DeliveryStatus.FAILED:
        return RetryOutcome(found=True, retried=False, status=row.status)
    row.status = DeliveryStatus.PENDING.value
    row.next_attempt_at = now
    row.lease_owner = None
    row.lease_until = None
    session.add(row)
    return RetryOutcome(found=True, retried=True)
