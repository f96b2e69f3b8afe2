"""Replicas sharing one PostgreSQL store claim due metrics with row leases.

A replica runs a metric only after claiming its ``metric_states`` row (``FOR UPDATE SKIP
LOCKED``, then a lease with an expiry), and only if the row still says the metric is due, so no
two replicas fetch it for the same tick. A replica that dies keeps its claims only until the
lease runs out; then another takes them over. On SQLite (one daemon per file) claims always
succeed and cost one small transaction per tick.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from okrsync.store.db import session_scope
from okrsync.store.tables import MetricStateRow
from okrsync.store.upsert import add_missing


@dataclass(frozen=True)
class Claim:
    metrics: frozenset[str]  # ours to run now
    held_until: datetime | None  # when the earliest lease held by another replica runs out


class MetricClaims:
    def __init__(self, engine: Engine, *, owner: str, lease: timedelta) -> None:
        self.engine = engine
        self.owner = owner
        self.lease = lease

    def ensure_rows(self, names: Collection[str]) -> None:
        """Every metric needs its row before it can be claimed (replicas may race to add it)."""
        with session_scope(self.engine) as session:
            present = set(
                session.exec(
                    select(MetricStateRow.name).where(col(MetricStateRow.name).in_(list(names)))
                )
            )
        missing = sorted(set(names) - present)
        if missing:  # another replica may add some of them first: theirs stand
            with session_scope(self.engine) as session:
                add_missing(session, [MetricStateRow(name=name) for name in missing])

    def claim(
        self,
        due: Collection[str],
        still_due: Callable[[MetricStateRow], bool],
        now: datetime,
    ) -> Claim:
        """Lease every due metric no other replica holds and that nobody ran meanwhile."""
        mine: set[str] = set()
        held: datetime | None = None
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(MetricStateRow)
                .where(col(MetricStateRow.name).in_(sorted(due)))
                .order_by(col(MetricStateRow.name))
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                other = row.lease_owner not in (None, self.owner)
                if other and row.lease_until is not None and row.lease_until > now:
                    held = row.lease_until if held is None else min(held, row.lease_until)
                    continue
                if not still_due(row):
                    continue
                row.lease_owner = self.owner
                row.lease_until = now + self.lease
                session.add(row)
                mine.add(row.name)
        return Claim(frozenset(mine), held)

    def release(self, *, everyone: bool = False) -> int:
        """Give up this replica's leases (at shutdown), or every lease (``everyone``: at the
        start of a daemon that knows it is alone, so a crashed one's claims need not run out)."""
        with session_scope(self.engine) as session:
            held = col(MetricStateRow.lease_owner).is_not(None)
            owner = held if everyone else col(MetricStateRow.lease_owner) == self.owner
            rows = session.exec(select(MetricStateRow).where(owner)).all()
            for row in rows:
                row.lease_owner = None
                row.lease_until = None
                session.add(row)
        return len(rows)
