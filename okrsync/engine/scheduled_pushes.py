"""Mirrors with a ``schedule`` of their own: a weekly digest, a daily status post.

At each tick the current state is queued for the mirror whether or not it changed. The tick's
time is part of the delivery's idempotency key, so replicas (or a restart) queue it once; ticks
missed while the daemon was down are coalesced into one push, like metric ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from okrsync.config import Config, CycleDef, MirrorDef, ObjectiveDef
from okrsync.engine.outbox import scheduled
from okrsync.store.db import session_scope
from okrsync.store.tables import MirrorRow

log = structlog.get_logger()


@dataclass(frozen=True)
class ScheduledMirror:
    mirror: MirrorDef
    objective: ObjectiveDef
    cycle: CycleDef


def scheduled_mirrors(config: Config) -> list[ScheduledMirror]:
    found = []
    for objective in config.objectives:
        cycle = config.cycles[objective.cycle]
        mirrors = [*objective.mirrors, *(m for kr in objective.key_results for m in kr.mirrors)]
        found += [ScheduledMirror(m, objective, cycle) for m in mirrors if m.policy.schedule]
    return found


class ScheduledPushes:
    def __init__(self, engine: Engine, config: Config, *, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.entries = scheduled_mirrors(config)
        self.clock = clock

    def enqueue_due(self) -> tuple[int, datetime | None]:
        """Queue every mirror whose tick has come; return how many, and the next tick."""
        now = self.clock()
        queued = 0
        wake: datetime | None = None
        for entry in self.entries:
            schedule = entry.mirror.policy.schedule
            assert schedule is not None
            try:
                with session_scope(self.engine) as session:
                    row = session.get(MirrorRow, entry.mirror.key)
                    if row is None:
                        continue
                    if row.last_scheduled_at is None:
                        row.last_scheduled_at = now  # the first tick comes after startup
                    else:
                        tick = schedule.next_tick(row.last_scheduled_at)
                        if tick <= now:
                            m, o, c = entry.mirror, entry.objective, entry.cycle
                            queued += scheduled(session, m, o, c, tick, now)
                            row.last_scheduled_at = now
                    session.add(row)
                    upcoming = schedule.next_tick(row.last_scheduled_at)
            except IntegrityError:  # another replica queued this tick first
                continue
            wake = upcoming if wake is None else min(wake, upcoming)
        if queued:
            log.info("scheduled_pushes_queued", count=queued)
        return queued, wake
