"""The daemon loop: sleep until the next metric or delivery is due, run it, repeat.

No busy polling: the loop computes the earliest due time from the pure schedule functions and
sleeps until then, or until it is asked to stop. Missed ticks (the daemon was down) are coalesced
into one immediate run per metric.

Other parts of the process (inbound webhooks, the API's "sync now") ask for a run through
:meth:`Daemon.request_run`: the request wakes the loop, so every run of the process goes through
this one loop and two runs never race over the same key results. Each pass of the loop records a
heartbeat (``last_loop_at``) that readiness checks compare with the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import select

from okrsync.config import Config
from okrsync.engine.dispatcher import Dispatcher
from okrsync.engine.metric_claims import MetricClaims
from okrsync.engine.schedule import plan_next
from okrsync.engine.scheduled_pushes import ScheduledPushes
from okrsync.engine.sync import RunReport, SyncService
from okrsync.errors import StoreError
from okrsync.store.db import session_scope
from okrsync.store.tables import MetricStateRow

log = structlog.get_logger()

CLAIM_RETRY = timedelta(seconds=1)
STORE_RETRY_CEILING = 30.0  # seconds between attempts while the store is unreachable
STORE_ERRORS = (OperationalError, InterfaceError, StoreError)
MAX_SLEEP = timedelta(minutes=5)  # wake now and then even when nothing is due: config of time


@dataclass
class RunRequest:
    """A run asked for from outside the schedule; ``done`` resolves with its report."""

    metrics: frozenset[str] | None
    key_results: frozenset[str] | None
    trigger: str
    done: asyncio.Future[RunReport]


async def stop_within(scheduler: asyncio.Task[None], grace: float) -> bool:
    """Let the scheduler finish its pass (its stop event is set) for ``grace`` seconds, then
    cancel it. True when it finished; a cancelled pass is abandoned like a crash: whatever it had
    not committed is done again on the next start, and nothing committed is lost."""
    done, _pending = await asyncio.wait({scheduler}, timeout=grace)
    if done:
        await scheduler  # its exception, if it ended with one
        return True
    scheduler.cancel()
    with suppress(asyncio.CancelledError):
        await scheduler
    log.warning("shutdown_abandoned_pass", grace_seconds=grace)
    return False


class Daemon:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        sync: SyncService,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.engine = engine
        self.config = config
        self.sync = sync
        self.dispatcher = dispatcher
        self.clock = clock
        self.ticks = 0
        self.scheduled = ScheduledPushes(engine, config, clock=clock)
        self.last_loop_at: datetime | None = None  # heartbeat: set at the top of every pass
        self.scheduler_lag_seconds = 0.0  # how late the most recent due metric was started
        self._requests: list[RunRequest] = []
        self._wake = asyncio.Event()
        self.claims = MetricClaims(engine, owner=sync.instance_id, lease=lease)
        self.claims.ensure_rows({name for kr in config.key_results() for name in kr.metric_names()})

    def nudge(self) -> None:
        """Go round the loop now (new outbox rows to deliver, say) instead of sleeping on."""
        self._wake.set()

    def request_run(
        self,
        *,
        metrics: Collection[str] | None = None,
        key_results: Collection[str] | None = None,
        trigger: str = "webhook",
    ) -> asyncio.Future[RunReport]:
        """Run these metrics (or key results; everything when both are None) as soon as possible.

        Must be called from the loop the daemon runs in. The returned future resolves with the
        run's report; it is cancelled if the daemon stops first.
        """
        done: asyncio.Future[RunReport] = asyncio.get_running_loop().create_future()
        self._requests.append(
            RunRequest(
                None if metrics is None else frozenset(metrics),
                None if key_results is None else frozenset(key_results),
                trigger,
                done,
            )
        )
        self._wake.set()
        return done

    def _still_due(self, now: datetime) -> Callable[[MetricStateRow], bool]:
        """Checked under the row lock: a replica may have run the metric since we looked."""

        def check(row: MetricStateRow) -> bool:
            schedule = self.config.metrics[row.name].schedule
            return plan_next(schedule, row.last_run_at, now, key=row.name).at <= now

        return check

    def due_metrics(self, now: datetime) -> tuple[set[str], datetime]:
        """The metrics due at ``now`` and when the next one after those falls due."""
        with session_scope(self.engine) as session:
            last = {r.name: r.last_run_at for r in session.exec(select(MetricStateRow))}
        used = {name for kr in self.config.key_results() for name in kr.metric_names()}
        due: set[str] = set()
        lag = 0.0
        wake = now + MAX_SLEEP
        for name in sorted(used):
            metric = self.config.metrics[name]
            plan = plan_next(metric.schedule, last.get(name), now, key=name)
            if plan.at <= now:
                due.add(name)
                lag = max(lag, (now - plan.at).total_seconds())
                if plan.missed > 1:
                    log.info("missed_ticks_coalesced", metric=name, missed=plan.missed)
            else:
                wake = min(wake, plan.at)
        if due:
            self.scheduler_lag_seconds = lag
        return due, wake

    async def run(self, stop: asyncio.Event) -> None:
        log.info("daemon_started", metrics=len(self.config.metrics))
        outages = 0
        try:
            while not stop.is_set():
                try:
                    delay = await self._pass()
                except STORE_ERRORS as exc:
                    # The store went away (a restart, a failover): keep the process, retry with
                    # backoff; nothing is lost, since work is only done once it is committed.
                    outages += 1
                    wait = min(2.0**outages, STORE_RETRY_CEILING)
                    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
                    log.warning("store_unreachable", error=reason, retry_in=wait, attempt=outages)
                    await self._sleep(stop, wait)
                    continue
                if outages:
                    log.info("store_reachable_again", after_attempts=outages)
                    outages = 0
                if delay is not None:
                    await self._sleep(stop, delay)
        finally:
            for request in self._requests:
                request.done.cancel()
            self._requests.clear()
        log.info("daemon_stopped", ticks=self.ticks)

    async def _pass(self) -> float | None:
        """One turn of the loop; how long to sleep after it, or None to go round again now."""
        now = self.clock()
        self.last_loop_at = now
        self._wake.clear()  # whatever woke us is handled in this pass
        if self._requests:
            await self._run_requested()
            return None
        due, wake = self.due_metrics(now)
        if due:
            claim = self.claims.claim(due, self._still_due(now), now)
            if claim.metrics:
                self.ticks += 1
                await self.sync.run_once(metrics=claim.metrics, trigger="schedule")
                return None  # the run took time: recompute from a fresh clock
            # every due metric is another replica's for now: look again when it should be
            # done, or when its lease runs out
            retry = now + CLAIM_RETRY
            wake = min(wake, retry, claim.held_until or retry)
        _queued, next_scheduled = self.scheduled.enqueue_due()
        _announced, next_stale = self.sync.stale.announce_due()
        for moment in (next_scheduled, next_stale):
            if moment is not None:
                wake = min(wake, moment)
        report = await self.dispatcher.dispatch_due()
        if report.delivered or report.failed:
            return None
        next_delivery = self.dispatcher.next_due()
        if next_delivery is not None and next_delivery > now:
            wake = min(wake, next_delivery)
        return max((wake - self.clock()).total_seconds(), 0.05)

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        """Until ``delay`` passes, the daemon is asked to stop, or a run is requested."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _run_requested(self) -> None:
        requests, self._requests = self._requests, []
        for request in requests:
            if request.done.done():  # the asker gave up
                continue
            try:
                # Without dispatch: the asker hears as soon as the values are recorded, and the
                # next pass of the loop delivers the outbox as usual.
                report = await self.sync.run_once(
                    metrics=request.metrics,
                    key_results=request.key_results,
                    trigger=request.trigger,
                    dispatch=False,
                )
            except Exception as exc:  # the asker hears of it; the schedule goes on
                log.exception("requested_run_failed", trigger=request.trigger)
                if not request.done.done():
                    request.done.set_exception(exc)
                continue
            if not request.done.done():
                request.done.set_result(report)
