"""The daemon loop: sleep until the next metric or delivery is due, run it, repeat.

No busy polling: the loop computes the earliest due time from the pure schedule functions and
sleeps until then, or until it is asked to stop. Missed ticks (the daemon was down) are coalesced
into one immediate run per metric.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlmodel import select

from okrsync.config import Config
from okrsync.engine.dispatcher import Dispatcher
from okrsync.engine.schedule import plan_next
from okrsync.engine.scheduled_pushes import ScheduledPushes
from okrsync.engine.sync import SyncService
from okrsync.store.db import session_scope
from okrsync.store.tables import MetricStateRow

log = structlog.get_logger()

MAX_SLEEP = timedelta(minutes=5)  # wake now and then even when nothing is due: config of time


class Daemon:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        sync: SyncService,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.config = config
        self.sync = sync
        self.dispatcher = dispatcher
        self.clock = clock
        self.ticks = 0
        self.scheduled = ScheduledPushes(engine, config, clock=clock)

    def due_metrics(self, now: datetime) -> tuple[set[str], datetime]:
        """The metrics due at ``now`` and when the next one after those falls due."""
        with session_scope(self.engine) as session:
            last = {r.name: r.last_run_at for r in session.exec(select(MetricStateRow))}
        used = {name for kr in self.config.key_results() for name in kr.metric_names()}
        due: set[str] = set()
        wake = now + MAX_SLEEP
        for name in sorted(used):
            metric = self.config.metrics[name]
            plan = plan_next(metric.schedule, last.get(name), now, key=name)
            if plan.at <= now:
                due.add(name)
                if plan.missed > 1:
                    log.info("missed_ticks_coalesced", metric=name, missed=plan.missed)
            else:
                wake = min(wake, plan.at)
        return due, wake

    async def run(self, stop: asyncio.Event) -> None:
        log.info("daemon_started", metrics=len(self.config.metrics))
        while not stop.is_set():
            now = self.clock()
            due, wake = self.due_metrics(now)
            if due:
                self.ticks += 1
                await self.sync.run_once(metrics=due, trigger="schedule")
                continue  # the run took time: recompute from a fresh clock
            _queued, next_scheduled = self.scheduled.enqueue_due()
            if next_scheduled is not None:
                wake = min(wake, next_scheduled)
            report = await self.dispatcher.dispatch_due()
            if report.delivered or report.failed:
                continue
            next_delivery = self.dispatcher.next_due()
            if next_delivery is not None and next_delivery > now:
                wake = min(wake, next_delivery)
            delay = max((wake - self.clock()).total_seconds(), 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        log.info("daemon_stopped", ticks=self.ticks)
