"""The daemon: a scheduler loop that starts due work, the runs it started, and a dispatcher task.

No busy polling: the loop computes the earliest due time from the pure schedule functions and
sleeps until then, or until it is asked to stop. Missed ticks (the daemon was down) are coalesced
into one immediate run per metric.

The loop never waits for a vendor. Each tick's due metrics are cut into groups of connections no
key result links (:func:`~okrsync.domain.planner.split_plan`), and each group runs as a task of
its own that records its values and queues its mirrors when its own fetch is done. A group whose
connection is still being fetched when its metrics fall due again is skipped for that tick (not
claimed, not queued twice), logged as ``fetch_still_running`` and shown on the connection's
health; it runs again once that fetch ended. The outbox is delivered by another task, woken when
a group recorded something, when a delivery falls due, or by :meth:`Daemon.nudge`.

Other parts of the process (inbound webhooks, the API's "sync now") ask for a run through
:meth:`Daemon.request_run`: each request runs as a task too, whose groups wait for their
connections to be free, so two runs of the process never fetch from one connection at once. Each
turn of the loop records a heartbeat (``last_loop_at``) that readiness checks compare with the
clock.

The loop's own state (what is fetching, running, blocked) lives on the event loop; every store
call (the due metrics' last runs, claims, scheduled pushes, staleness, the dispatcher's work) is
made in a worker thread (:func:`okrsync.store.offload.in_thread`), so health, webhooks and the API
answer while it waits on the store. Connections a pass is about to claim metrics for are marked
fetching before it waits for the claim, so a requested run cannot take them meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import select

from okrsync.app import apply_definitions
from okrsync.config import Config
from okrsync.config.rollover import following, rolled_over
from okrsync.domain.backoff import capped_exponential
from okrsync.domain.planner import (
    default_request_key,
    plan_queries,
    request_keys,
    schedule_offsets,
    split_plan,
)
from okrsync.domain.schedule import plan_next
from okrsync.engine.closeout import CycleCloser, open_metric_names
from okrsync.engine.dispatcher import Dispatcher
from okrsync.engine.metric_claims import MetricClaims
from okrsync.engine.reminders import Reminders
from okrsync.engine.scheduled_pushes import ScheduledPushes, scheduled_mirrors
from okrsync.engine.staleness import watched_key_results
from okrsync.engine.sync import RunReport, SyncService
from okrsync.engine.work_sync import WorkSync, work_entries
from okrsync.errors import StoreError
from okrsync.store.db import session_scope
from okrsync.store.offload import in_thread
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
    """Let the scheduler finish (its stop event is set) for ``grace`` seconds, then cancel it.

    The scheduler's task ends only once every run it started and its dispatcher have ended, so
    all of them share the grace period, and cancelling it cancels them all. True when it
    finished; cancelled work is abandoned like a crash: whatever it had not committed is done
    again on the next start, and nothing committed is lost."""
    done, _pending = await asyncio.wait({scheduler}, timeout=grace)
    if done:
        await scheduler  # its exception, if it ended with one
        return True
    scheduler.cancel()
    with suppress(asyncio.CancelledError):
        await scheduler
    log.warning("shutdown_abandoned_pass", grace_seconds=grace)
    return False


def store_retry_delay(outages: int) -> float:
    """Seconds before the next attempt after ``outages`` failed ones in a row: 2, 4 … 30."""
    return capped_exponential(outages, 1.0, STORE_RETRY_CEILING)


def delivery_wait(next_due: datetime | None, now: datetime) -> float:
    """How long the dispatcher sleeps when nothing is left to deliver now, unless nudged.

    Until the next pending delivery falls due; a due one it could not claim (another replica
    holds its lease) is looked at again after :data:`CLAIM_RETRY`; with nothing pending, until
    :data:`MAX_SLEEP`. Pure.
    """
    if next_due is None:
        return MAX_SLEEP.total_seconds()
    if next_due <= now:
        return CLAIM_RETRY.total_seconds()
    return min(max((next_due - now).total_seconds(), 0.05), MAX_SLEEP.total_seconds())


@dataclass(frozen=True)
class _Held:
    """A due metric this process is not starting now: since when (it counts as run then, so
    it falls due again at its next tick, not at once) and which busy connections hold it."""

    since: datetime
    connections: frozenset[str]


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]


@dataclass
class StoreOutages:
    """One task's store outages in a row: how long to wait before its next try, and the log
    lines that say the store went away and came back."""

    task: str
    count: int = 0

    def failed(self, exc: BaseException) -> float:
        self.count += 1
        wait = store_retry_delay(self.count)
        log.warning(
            "store_unreachable",
            task=self.task,
            error=_reason(exc),
            retry_in=wait,
            attempt=self.count,
        )
        return wait

    def reached(self) -> None:
        if self.count:
            log.info("store_reachable_again", task=self.task, after_attempts=self.count)
            self.count = 0


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
        self.closer = CycleCloser(engine, config, clock=clock)
        self.closed_cycles: set[str] = set()  # closed in the store: their metrics are not fetched
        self.reminders = Reminders(
            engine, config, dispatcher.sink_for, owner=sync.instance_id, clock=clock
        )
        self.on_config: list[Callable[[Config], None]] = []  # told when the cycles roll over
        self.last_loop_at: datetime | None = None  # heartbeat: set at the top of every pass
        self.last_pass_at: datetime | None = None  # the ``last_loop_at`` of the last whole pass
        self.scheduler_lag_seconds = 0.0  # how late the most recent due metric was started
        self._requests: list[RunRequest] = []
        self._wake = asyncio.Event()  # the scheduler loop: a request, a run ended
        self._deliver = asyncio.Event()  # the dispatcher: something may be due to deliver
        self._drained = asyncio.Event()  # stopping, and no run is left: deliver once, then end
        self._released = asyncio.Event()  # a run let go of its connections (replaced each time)
        # Connections a run of this process is fetching from, and since when.
        self.fetching: dict[str, datetime] = {}
        # Metrics being fetched by a scheduled run: a tick of theirs that comes meanwhile is
        # skipped and logged (``fetch_still_running``).
        self._running: dict[str, _Held] = {}
        # Due metrics waiting because a run of another metric holds a connection their group
        # needs; due again at once when it ends, and logged as above if a tick of theirs passes.
        self._blocked: dict[str, _Held] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # runs in flight
        self._offsets: dict[str, timedelta] | None = None  # see offsets()
        self._failures: list[Exception] = []  # of scheduled runs, for the loop to act on
        self.claims = MetricClaims(engine, owner=sync.instance_id, lease=lease)
        self.work = WorkSync.from_sync(sync)  # the work behind key results (issue 15)
        self._work_running = False
        self.claims.ensure_rows({name for kr in config.key_results() for name in kr.metric_names()})
        for name in sorted({metric.connection for metric in config.metrics.values()}):
            deadline = config.fetch_deadline(name)
            if deadline >= lease:  # another replica could claim metrics still being fetched
                log.warning(
                    "fetch_deadline_beyond_lease",
                    connection=name,
                    fetch_deadline=deadline.total_seconds(),
                    lease=lease.total_seconds(),
                )

    def nudge(self) -> None:
        """Deliver the outbox now (new rows were queued, say) instead of at the next due time."""
        self._deliver.set()

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

    def offsets(self) -> dict[str, timedelta]:
        """Each metric's jitter, keyed by the request that answers it rather than by its name:
        metrics one request answers (the same query, one batch, one response read at several
        paths) fall due in the same pass, so a tick asks each request once. The same on every
        replica and after a restart (it hashes the config, and the grid is anchored at the
        epoch). Computed once; a connection that cannot be made aligns on the whole spec."""
        if self._offsets is None:
            schedules = {name: m.schedule for name, m in self.config.metrics.items()}
            self._offsets = schedule_offsets(schedules, request_keys(self.config, self._request))
        return self._offsets

    def _request(self, connection: str, spec: Any) -> str:
        try:
            return self.sync.connections.source(connection).request_key(spec)
        except Exception:  # a broken plugin is reported where it is fetched, not here
            return default_request_key(connection, spec)

    def _still_due(self, now: datetime) -> Callable[[MetricStateRow], bool]:
        """Checked under the row lock: a replica may have run the metric since we looked."""

        def check(row: MetricStateRow) -> bool:
            schedule = self.config.metrics[row.name].schedule
            offset = self.offsets()[row.name]
            return plan_next(schedule, row.last_run_at, now, offset=offset).at <= now

        return check

    def last_runs(self) -> dict[str, datetime | None]:
        """Each metric's last recorded run, from the store (a worker thread's call)."""
        with session_scope(self.engine) as session:
            return {r.name: r.last_run_at for r in session.exec(select(MetricStateRow))}

    def due_metrics(
        self, now: datetime, recorded: dict[str, datetime | None]
    ) -> tuple[dict[str, float], datetime]:
        """The metrics due at ``now``, each with how late it is (seconds), and when the next one
        after those falls due, given their ``recorded`` last runs (:meth:`last_runs`). A metric
        being fetched, or skipped because its connection is, counts from the tick it was started
        or skipped at, not from its last recorded run."""
        last = dict(recorded)
        last.update({name: held.since for name, held in self._blocked.items()})
        last.update({name: held.since for name, held in self._running.items()})
        used = open_metric_names(self.config, self.closed_cycles)
        due: dict[str, float] = {}
        wake = now + MAX_SLEEP
        offsets = self.offsets()
        for name in sorted(used):
            metric = self.config.metrics[name]
            plan = plan_next(metric.schedule, last.get(name), now, offset=offsets[name])
            if plan.at <= now:
                due[name] = (now - plan.at).total_seconds()
                if plan.missed > 1 and name not in self._running:
                    log.info("missed_ticks_coalesced", metric=name, missed=plan.missed)
            else:
                wake = min(wake, plan.at)
        return due, wake

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; then the runs in flight finish (no new one starts), the
        dispatcher delivers what they queued, and this returns. Cancelling it cancels them all."""
        log.info("daemon_started", metrics=len(self.config.metrics))
        dispatcher = asyncio.create_task(self._deliver_forever(), name="dispatcher")
        dispatcher.add_done_callback(self._dispatcher_ended)
        outages = StoreOutages("scheduler")
        try:
            while not stop.is_set():
                try:
                    self._raise_failures()
                    delay = await self._pass()
                except STORE_ERRORS as exc:
                    # The store went away (a restart, a failover): keep the process, retry with
                    # backoff; nothing is lost, since work is only done once it is committed.
                    await self._sleep(outages.failed(exc), stop, self._wake)
                    continue
                outages.reached()
                await self._sleep(delay, stop, self._wake)
            while self._tasks:  # stopping: what is in flight may finish
                await asyncio.wait(set(self._tasks))
            self._drained.set()
            await dispatcher
            self._raise_failures(store_too=False)
        finally:
            in_flight = [*self._tasks, dispatcher]
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            for request in self._requests:
                request.done.cancel()
            self._requests.clear()
            await self.work.aclose()
        log.info("daemon_stopped", ticks=self.ticks)

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        """The dispatcher ends only when told to; if a bug ended it, the loop raises it (a
        daemon that no longer delivers must not look healthy)."""
        failure = None if task.cancelled() else task.exception()
        if isinstance(failure, Exception):
            self._failures.append(failure)
            self._wake.set()

    def _raise_failures(self, *, store_too: bool = True) -> None:
        """A scheduled run that failed: a store outage is the loop's to back off from; anything
        else stops the daemon, as a failing pass always did (a bug must not loop quietly)."""
        failures, self._failures = self._failures, []
        for failure in failures:
            if not isinstance(failure, STORE_ERRORS):
                raise failure
        if failures and store_too:
            raise failures[0]

    async def _pass(self) -> float:
        """One turn of the loop: start what is due; how long to sleep after it."""
        now = self.clock()
        self.last_loop_at = now
        self._wake.clear()  # whatever woke us is handled in this pass
        requests, self._requests = self._requests, []
        for request in requests:
            self._spawn(self._requested(request), f"requested:{request.trigger}")
        busy = frozenset(self.fetching)
        closed_now, self.closed_cycles, next_close = await in_thread(self.closer.close_due, busy)
        await self._roll_over(now)
        self.work.closed = set(self.closed_cycles)  # their linked work is not read any more
        self._forget_closed()
        recorded = await in_thread(self.last_runs)
        due, wake = self.due_metrics(now, recorded)
        if due:
            retry = await self._start_due(due, now)
            if retry is not None:
                wake = min(wake, retry)
        work_at = self._start_work(now)
        if work_at is not None:
            wake = min(wake, work_at)
        queued, next_scheduled = await in_thread(self.scheduled.enqueue_due)
        announced, next_stale = await in_thread(self.sync.stale.announce_due)
        if queued or announced or any(report.finals_queued for report in closed_now):
            self.nudge()
        next_reminder = await self.reminders.send_due()
        for moment in (next_scheduled, next_stale, next_close, next_reminder):
            if moment is not None:
                wake = min(wake, moment)
        self.last_pass_at = now
        return max((wake - self.clock()).total_seconds(), 0.05)

    async def _roll_over(self, now: datetime) -> None:
        """Move ``cycle: current`` objectives to the series' next cycle once loading the config
        today would (see :mod:`okrsync.config.rollover`), and only after the cycle they leave is
        closed in the store, so its frozen record holds them."""
        rolled = rolled_over(self.config, now.astimezone(UTC).date())
        if rolled is None:
            return
        left = following(self.config)
        if not left <= self.closed_cycles:
            return  # closing waits for a fetch in flight; so does the roll-over
        await in_thread(apply_definitions, self.engine, rolled, now)
        self.use_config(rolled)
        log.info("cycle_rolled_over", left=sorted(left), to=sorted(following(rolled)))

    def use_config(self, config: Config) -> None:
        """Run with ``config`` from now on (its definitions are in the store already); the
        parts of the process that read the config follow (``on_config`` listeners too)."""
        self.config = config
        self.sync.config = config
        self.sync.stale.watched = watched_key_results(config)
        self.closer.config = config
        self.scheduled.entries = scheduled_mirrors(config)
        self.work.config = config
        self.work.entries = work_entries(config)
        self._offsets = None
        for listener in self.on_config:
            listener(config)

    def _forget_closed(self) -> None:
        """Closed cycles' key results are frozen: no scheduled pushes, no stale announcements."""
        if not self.closed_cycles:
            return
        shut = self.closed_cycles
        self.scheduled.entries = [e for e in self.scheduled.entries if e.cycle.id not in shut]
        watched = self.sync.stale.watched
        self.sync.stale.watched = {k: w for k, w in watched.items() if w.cycle.id not in shut}

    async def _start_due(self, due: dict[str, float], now: datetime) -> datetime | None:
        """Start a run per group of due metrics whose connections are free; skip the others.

        Returns when to look again at due metrics another replica holds, if any.
        """
        again = {name: self._running[name] for name in due if name in self._running}
        startable = due.keys() - again.keys()
        groups = split_plan(plan_queries(self.config, metrics=startable))
        waiting: dict[str, _Held] = {}
        free: list[tuple[frozenset[str], frozenset[str]]] = []  # (due metrics, connections)
        for group in groups:
            wanted = frozenset(group.metric_names & startable)
            taken = frozenset(group.connections & self.fetching.keys())
            if not taken:
                if wanted:
                    free.append((wanted, group.connections))
                continue
            for name in wanted:
                held = _Held(now, taken)
                if name in self._blocked:  # it waited a whole tick of its own already
                    again[name] = held
                else:
                    waiting[name] = held
                self._blocked[name] = held
        if waiting:
            log.debug(
                "fetch_waits_for_connection",
                connections=sorted(set().union(*(h.connections for h in waiting.values()))),
                metrics=sorted(waiting),
            )
        # The free groups' connections are ours while the store is asked off the loop: a
        # requested run waits for them meanwhile (it would find them free, and fetch them twice).
        reserved = frozenset(c for _, connections in free for c in connections)
        self.fetching.update(dict.fromkeys(reserved, now))
        try:
            if again:
                await self._still_running(again, now)
            if not free:
                return None
            asked = frozenset(name for wanted, _ in free for name in wanted)
            claim = await in_thread(self.claims.claim, sorted(asked), self._still_due(now), now)
        except BaseException:
            self._unreserve(reserved)
            raise
        started = False
        fetching: set[str] = set()
        for wanted, connections in free:
            mine = wanted & claim.metrics
            if mine:
                self._start_group(mine, connections, now)
                fetching |= connections
                started = True
        self._unreserve(reserved - fetching)
        if started:
            self.ticks += 1
            self.scheduler_lag_seconds = max(due[name] for name in claim.metrics)
        if claim.metrics >= asked:
            return None
        # some due metric is another replica's for now: look again when it should be done, or
        # when its lease runs out
        retry = now + CLAIM_RETRY
        return min(retry, claim.held_until or retry)

    def _start_work(self, now: datetime) -> datetime | None:
        """Start reading the linked work that is due (as a task of its own); when to look again
        (None: the task's end wakes the loop, or there is no work to read)."""
        if not self.work.readable or self._work_running:
            return None
        if self.work.next_due is not None and self.work.next_due > now:
            return self.work.next_due
        self._work_running = True
        self._spawn(self._work_refresh(), "work")
        return None

    async def _work_refresh(self) -> None:
        try:
            await self.work.refresh_due()
        except Exception as exc:  # the loop acts on it (backs off, or stops the daemon)
            self._failures.append(exc)
        finally:
            self._work_running = False
            self._wake.set()

    async def _still_running(self, skipped: dict[str, _Held], now: datetime) -> None:
        """A tick of these metrics came while a fetch they need still runs: skip it, say so in
        the log and on the connections' health, and count their next tick from now."""
        for name, held in skipped.items():
            if name in self._running:
                self._running[name] = _Held(now, held.connections)
        busy = sorted(
            {c for held in skipped.values() for c in held.connections if c in self.fetching}
        )
        since = {name: self.fetching[name] for name in busy}
        log.warning(
            "fetch_still_running",
            connections=busy,
            metrics=sorted(skipped),
            since={name: moment.isoformat() for name, moment in since.items()},
        )
        await in_thread(self.sync.health.note_still_fetching, since)

    def _unreserve(self, connections: Collection[str]) -> None:
        """Connections a pass marked fetching while it claimed, and started nothing on: free
        again for a requested run waiting for them (the scheduler loop need not wake)."""
        freed = [name for name in connections if self.fetching.pop(name, None) is not None]
        if freed:
            released, self._released = self._released, asyncio.Event()
            released.set()

    def _start_group(
        self, metrics: frozenset[str], connections: frozenset[str], now: datetime
    ) -> None:
        self.fetching.update(dict.fromkeys(connections, now))
        self._running.update(dict.fromkeys(metrics, _Held(now, connections)))
        for name in metrics:
            self._blocked.pop(name, None)
        self._spawn(self._scheduled(metrics, connections), "sync:" + ",".join(sorted(connections)))

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scheduled(self, metrics: frozenset[str], connections: frozenset[str]) -> None:
        """One group's scheduled run; its connections are this process's until it ends."""
        try:
            report = await self.sync.run_once(metrics=metrics, trigger="schedule", dispatch=False)
        except Exception as exc:  # the loop acts on it (backs off, or stops the daemon)
            self._failures.append(exc)
            return
        finally:
            self._release(connections, metrics)
        if any(recorded.deliveries for recorded in report.recorded):
            self.nudge()
        self._values_changed(report)

    def _values_changed(self, report: RunReport) -> None:
        """Key results whose values a run changed: their backlinks show the new progress."""
        changed = {recorded.key_result_id for recorded in report.recorded if recorded.changed}
        if changed:
            self.work.key_results_changed(changed)

    def _release(self, connections: Collection[str], metrics: Collection[str] = ()) -> None:
        """A run let go of its connections: what waited for them may go now."""
        for name in connections:
            self.fetching.pop(name, None)
        for name in metrics:
            self._running.pop(name, None)
        freed = set(connections)
        for name, held in list(self._blocked.items()):
            if held.connections & freed:
                del self._blocked[name]
        released, self._released = self._released, asyncio.Event()
        released.set()
        self._wake.set()

    @asynccontextmanager
    async def _exclusive(self, connections: frozenset[str]) -> AsyncIterator[None]:
        """The gate of a requested run's groups: wait until no other run of this process is
        fetching from ``connections``, hold them while fetching and recording, then nudge the
        dispatcher for what was queued."""
        while connections & self.fetching.keys():
            await self._released.wait()
        self.fetching.update(dict.fromkeys(connections, self.clock()))
        try:
            yield
        finally:
            self._release(connections)
            self.nudge()

    async def _requested(self, request: RunRequest) -> None:
        if request.done.done():  # the asker gave up
            return
        try:
            # Without dispatch: the asker hears as soon as the values are recorded, and the
            # dispatcher delivers them meanwhile (each group nudges it).
            report = await self.sync.run_once(
                metrics=request.metrics,
                key_results=request.key_results,
                trigger=request.trigger,
                dispatch=False,
                gate=self._exclusive,
            )
        except asyncio.CancelledError:
            request.done.cancel()
            raise
        except Exception as exc:  # the asker hears of it; the schedule goes on
            log.exception("requested_run_failed", trigger=request.trigger)
            if not request.done.done():
                request.done.set_exception(exc)
            return
        self._values_changed(report)
        if not request.done.done():
            request.done.set_result(report)

    async def _deliver_forever(self) -> None:
        """The dispatcher's task: deliver what is due, sleep until the next delivery falls due
        or a nudge; once the daemon stops and its runs are drained, deliver once more and end."""
        outages = StoreOutages("dispatcher")
        while True:
            last_round = self._drained.is_set()
            self._deliver.clear()
            try:
                report = await self.dispatcher.dispatch_due(wake=self._deliver)
                more = bool(report.delivered or report.failed)  # more may be due already
                if more:
                    wait = 0.0
                else:
                    wait = delivery_wait(await self.dispatcher.next_due_off_loop(), self.clock())
            except STORE_ERRORS as exc:
                wait = outages.failed(exc)
                if last_round:
                    return
                await self._sleep(wait, self._drained)
                continue
            outages.reached()
            if last_round:
                return
            if wait > 0:
                await self._sleep(wait, self._deliver, self._drained)

    @staticmethod
    async def _sleep(delay: float, *events: asyncio.Event) -> None:
        """Until ``delay`` passes or one of ``events`` is set."""
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
