"""Reading the work behind key results from the trackers, and keeping backlinks on it.

Per ``work`` entry (see :mod:`okrsync.config.work`): the first read is full, later ones ask only
for what changed since the previous read began (less a small overlap), and now and then an
ids-only reconciliation finds the items that left the query (:mod:`okrsync.domain.work_refresh`
decides which); an entry small enough for it is reconciled by one full read instead, which
answers both in no more requests. Entries are read when their ``schedule`` says (the daemon's
loop asks :meth:`WorkSync.refresh_due`), on ``okrsync sync``, and within seconds of a verified
tracker webhook (:meth:`WorkSync.request`). Connections are read side by side, each one's
entries a few at a time through that connection's own client and call budget; a failing tracker
is reported on its connection's health and the others go on.

Backlinks (``backlink: true``) follow each read: every linked item gets one link to its key
result, put again only when what it shows changes (title, rounded progress, status); an item that
left the query has its link taken off. The tracker call comes first and the store note second:
a crash between them repeats the call on the next pass, and the connectors make that call
idempotent (a Jira remote link upserted by ``globalId``, a GitHub label, a Linear attachment by
url), so there is never a second link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine

from okrsync.config import Config
from okrsync.config.work import WorkDef
from okrsync.domain.statuses import ConnectionStatus
from okrsync.domain.work_refresh import (
    READ_OVERLAP,
    RECONCILE_EVERY,
    WorkReadPlan,
    backlink_progress,
    plan_work_read,
    reconcile_in_full,
    shown_digest,
)
from okrsync.engine.closeout import closed_in_store
from okrsync.engine.health import ConnectionHealth
from okrsync.engine.runtime import Connections
from okrsync.errors import PluginError
from okrsync.redaction import Redactor
from okrsync.sdk.models import Status
from okrsync.sdk.work import Backlink, WorkTracker
from okrsync.store import work_items as store
from okrsync.store.db import session_scope
from okrsync.store.offload import in_thread
from okrsync.store.tables import ConnectionStateRow, KeyResultRow

if TYPE_CHECKING:
    from okrsync.engine.sync import SyncService

log = structlog.get_logger()

LEASE = timedelta(minutes=2)
ENTRY_CONCURRENCY = 4  # entries of one connection read at once (the client paces requests)
HELD_RETRY = timedelta(seconds=5)  # an entry another replica reads: look again after this


@dataclass
class WorkReport:
    """What one refresh did."""

    reads: int = 0
    full_reads: int = 0
    reconciliations: int = 0
    added: int = 0
    changed: int = 0
    unlinked: int = 0
    backlinks_put: int = 0
    backlinks_removed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: WorkReport) -> None:
        for name in (
            "reads",
            "full_reads",
            "reconciliations",
            "added",
            "changed",
            "unlinked",
            "backlinks_put",
            "backlinks_removed",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def work_entries(config: Config) -> list[WorkDef]:
    """Every ``work`` entry of the config: the objectives' and their key results'."""
    found: list[WorkDef] = []
    for objective in config.objectives:
        found.extend(objective.work)
        for kr in objective.key_results:
            found.extend(kr.work)
    return found


class WorkSync:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        connections: Connections,
        *,
        clock: Callable[[], datetime],
        redactor: Redactor,
        instance_id: str,
        health: ConnectionHealth | None = None,
        dashboard_url: str | None = None,
        lease: timedelta = LEASE,
        overlap: timedelta = READ_OVERLAP,
        reconcile_every: timedelta = RECONCILE_EVERY,
    ) -> None:
        self.engine = engine
        self.config = config
        self.connections = connections
        self.clock = clock
        self.redactor = redactor
        self.instance_id = instance_id
        self.health = health or ConnectionHealth(
            engine, config.connection_types, clock=clock, redactor=redactor
        )
        self.dashboard_url = dashboard_url
        self.lease = lease
        self.overlap = overlap
        self.reconcile_every = reconcile_every
        self.entries = work_entries(config)
        # cycles closed in the store (looked up each refresh): their entries are not read any
        # more, but stay entries, so their items and links are kept as history
        self.closed: set[str] = set()
        # when the next entry falls due; None before the first pass (then at once)
        self.next_due: datetime | None = None
        # entries whose last read failed wait for their schedule's next tick after the failure
        self._retry_at: dict[str, datetime] = {}
        self._rows_ready = False
        self._leftovers_checked: set[str] = set()  # connections whose stray links were taken off
        self._locks: dict[str, asyncio.Lock] = {}
        self._queued: set[str] = set()  # connections with a requested refresh waiting
        self._relink: dict[str, set[str]] = {}  # connection → entries whose backlinks wait
        self._tasks: set[asyncio.Task[WorkReport]] = set()
        self.requested = 0  # requested refreshes started (webhooks)

    @classmethod
    def from_sync(cls, sync: SyncService, **kwargs: object) -> WorkSync:
        return cls(
            sync.engine,
            sync.config,
            sync.connections,
            clock=sync.clock,
            redactor=sync.redactor,
            instance_id=sync.instance_id,
            health=sync.health,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def connection_names(self) -> set[str]:
        return {entry.connection for entry in self.readable}

    @property
    def readable(self) -> list[WorkDef]:
        """The entries still read: those whose objective's cycle is not closed."""
        if not self.closed:
            return self.entries
        cycles = {o.id: o.cycle for o in self.config.objectives}
        return [e for e in self.entries if cycles.get(e.objective_id) not in self.closed]

    def _closed_cycles(self) -> set[str]:
        with session_scope(self.engine) as session:
            return set(closed_in_store(session))

    # --- entry points ---------------------------------------------------------------------

    async def refresh(
        self, connections: Collection[str] | None = None, *, forced: bool = False
    ) -> WorkReport:
        """Read the entries (on ``connections``) that are due, or all of them when ``forced``;
        keep their backlinks. Never raises for a tracker's failure (it is in the report)."""
        self.closed = await in_thread(self._closed_cycles)
        names = sorted(self.connection_names if connections is None else connections)
        names = [name for name in names if name in self.connection_names]
        report = WorkReport()
        if not names:
            await self._plan_next()  # nothing readable (closed cycles, say): nothing is due
            return report
        results = await asyncio.gather(*(self._connection(name, forced) for name in names))
        for result in results:
            report.add(result)
        await self._plan_next()
        return report

    def request(self, connection: str) -> asyncio.Task[WorkReport] | None:
        """Refresh ``connection``'s entries now (a tracker webhook): an incremental read and a
        reconciliation. A burst of events costs at most the refresh running and one more: while
        one waits to start, further requests join it. Call it from the running loop."""
        if connection not in self.connection_names or connection in self._queued:
            return None
        self._queued.add(connection)
        self.requested += 1
        task = asyncio.ensure_future(self._requested(connection))
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def key_results_changed(self, key_results: Collection[str]) -> None:
        """These key results have new values: refresh the backlinks of their items soon (no
        read), so the trackers show the new progress and status. Joins a pass already waiting
        for its connection. Call it from the running loop."""
        entries = [e for e in self.readable if e.backlink and e.key_result_id in key_results]
        for entry in entries:
            waiting = self._relink.setdefault(entry.connection, set())
            if not waiting:
                task = asyncio.ensure_future(self._backlinks_requested(entry.connection))
                self._tasks.add(task)
                task.add_done_callback(self._ended)
            waiting.add(entry.key)

    async def _backlinks_requested(self, connection: str) -> WorkReport:
        report = WorkReport()
        async with self._lock(connection):
            keys = self._relink.pop(connection, set())
            try:
                tracker = self._tracker(connection)
            except PluginError as exc:
                report.errors.append(str(exc))
                return report
            for entry in self.entries:
                if entry.key not in keys:
                    continue
                try:
                    report.add(await self._backlinks(tracker, entry))
                except Exception as exc:
                    report.errors.append(self._describe(entry, exc, "backlink"))
        return report

    async def refresh_due(self) -> WorkReport:
        """The daemon's scheduled pass: the entries whose schedule or reconciliation is due."""
        return await self.refresh()

    async def settled(self) -> None:
        """Until the requested refreshes and backlink passes started so far have ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel requested refreshes still running (the daemon stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- one connection -------------------------------------------------------------------

    def _lock(self, connection: str) -> asyncio.Lock:
        return self._locks.setdefault(connection, asyncio.Lock())

    async def _requested(self, connection: str) -> WorkReport:
        async with self._lock(connection):
            self._queued.discard(connection)
            log.info("work_refresh_requested", connection=connection)
            self.closed = await in_thread(self._closed_cycles)
            report = await self._read_connection(connection, forced=True)
        await self._plan_next()
        return report

    def _ended(self, task: asyncio.Task[WorkReport]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("work_refresh_failed", error=type(task.exception()).__name__)

    async def _connection(self, connection: str, forced: bool) -> WorkReport:
        async with self._lock(connection):
            return await self._read_connection(connection, forced=forced)

    async def _ensure_rows(self) -> None:
        """Once per process: every entry has its read row (to be claimed), and the items of
        entries gone from the config are unlinked."""
        if self._rows_ready:
            return
        live = {e.key: e.connection for e in self.entries}
        await in_thread(store.ensure_reads, self.engine, live)
        await in_thread(store.unlink_retired, self.engine, list(live), self.clock())
        self._rows_ready = True

    async def _read_connection(self, connection: str, *, forced: bool) -> WorkReport:
        report = WorkReport()
        await self._ensure_rows()
        entries = [e for e in self.readable if e.connection == connection]
        now = self.clock()
        states = await in_thread(store.read_states, self.engine, [e.key for e in entries])
        plans: dict[str, WorkReadPlan] = {}
        for entry in entries:
            state = states.get(entry.key)
            plans[entry.key] = plan_work_read(
                entry.schedule,
                read_since=state.read_since if state else None,
                read_at=state.read_at if state else None,
                reconciled_at=state.reconciled_at if state else None,
                now=now,
                forced=forced,
                reconcile_every=self.reconcile_every,
                overlap=self.overlap,
            )
        due = [
            e
            for e in entries
            if plans[e.key].due and (forced or self._retry_at.get(e.key, now) <= now)
        ]
        if not due:
            return report
        paused = await in_thread(self.health.paused, [connection])
        if connection in paused:  # resting after failures, or out of quota: not asked at all
            report.errors.append(self._describe(due[0], paused[connection], "read"))
            until = await in_thread(self._paused_until, connection)
            for entry in due:
                later = entry.schedule.next_tick(now)
                self._retry_at[entry.key] = until if until is not None and until > now else later
            return report
        mine = await in_thread(
            store.claim,
            self.engine,
            [e.key for e in due],
            owner=self.instance_id,
            now=now,
            lease=self.lease,
        )
        try:
            tracker = self._tracker(connection)
        except PluginError as exc:
            await in_thread(store.release, self.engine, mine, owner=self.instance_id)
            report.errors.append(self.redactor.redact(str(exc)))
            await in_thread(self._note_health, connection, report.errors, len(mine))
            for entry in due:
                self._retry_at[entry.key] = entry.schedule.next_tick(now)
            return report
        failures: list[str] = []
        if connection not in self._leftovers_checked:
            try:
                report.add(await self._take_off_leftovers(tracker, connection))
                self._leftovers_checked.add(connection)
            except Exception as exc:  # tried again with the next read
                failures.append(self._describe(due[0], exc, "backlink"))
        limit = asyncio.Semaphore(ENTRY_CONCURRENCY)

        async def one(entry: WorkDef) -> None:
            async with limit:
                try:
                    report.add(await self._read_entry(tracker, entry, plans[entry.key]))
                except Exception as exc:  # a tracker's failure (or a plugin's bug) stays here
                    await in_thread(store.release, self.engine, [entry.key], owner=self.instance_id)
                    failures.append(self._describe(entry, exc))
                    self._retry_at[entry.key] = entry.schedule.next_tick(self.clock())
                    return
                self._retry_at.pop(entry.key, None)
                if entry.backlink:
                    try:
                        report.add(await self._backlinks(tracker, entry))
                    except Exception as exc:
                        failures.append(self._describe(entry, exc, "backlink"))

        for entry in due:
            if entry.key not in mine:  # another replica reads it now: look again soon
                self._retry_at[entry.key] = now + HELD_RETRY
        await asyncio.gather(*(one(entry) for entry in due if entry.key in mine))
        report.errors.extend(failures)
        attempted = len([e for e in due if e.key in mine])
        await in_thread(self._note_health, connection, failures, attempted)
        return report

    def _paused_until(self, connection: str) -> datetime | None:
        with session_scope(self.engine) as session:
            state = session.get(ConnectionStateRow, connection)
            return state.paused_until if state is not None else None

    def _tracker(self, connection: str) -> WorkTracker:
        live = self.connections.get(connection)
        if not isinstance(live, WorkTracker):
            raise PluginError(f"connection {connection!r} cannot list work")
        return live

    def _describe(self, entry: WorkDef, exc: Exception, what: str = "read") -> str:
        text = self.redactor.redact(str(exc)) or type(exc).__name__
        log.warning(
            "work_" + what + "_failed",
            connection=entry.connection,
            work=entry.key,
            error=text,
        )
        return f"{entry.connection}: work {what} for {entry.owner} failed: {text}"

    async def _read_entry(
        self, tracker: WorkTracker, entry: WorkDef, plan: WorkReadPlan
    ) -> WorkReport:
        report = WorkReport(reads=1)
        cycle = self.config.cycles[self.config.objective(entry.objective_id).cycle].window()
        linked: set[str] = set()
        if plan.since is not None and plan.reconcile:
            linked = await in_thread(store.stored_keys, self.engine, entry.key)
            pages = tracker.work_pages()
            if pages is not None and reconcile_in_full(
                len(linked), page=pages.items, ids_page=pages.keys
            ):
                # one full read answers what changed and what is still matched
                report.reconciliations = 1
                plan = replace(plan, since=None)
        started = self.clock()
        items = list(await tracker.list_work(entry.spec, cycle, plan.since))
        present: set[str] | None = None
        if plan.since is None:
            report.full_reads = 1
            present = {item.key for item in items}
        elif plan.reconcile:
            report.reconciliations = 1
            present = set(await tracker.list_work_keys(entry.spec, cycle))
            if present - linked - {item.key for item in items}:
                # matched now, yet neither linked nor changed since the last read (it joined or
                # came back without an update we saw): read them all once
                items = list(await tracker.list_work(entry.spec, cycle, None))
                report.full_reads = 1
        owner = store.Owner(entry.key_result_id, entry.objective_id)
        outcome = await in_thread(
            store.record_read,
            self.engine,
            entry.key,
            entry.connection,
            owner,
            items,
            started_at=started,
            now=self.clock(),
            present=present,
        )
        report.added, report.changed, report.unlinked = (
            outcome.added + outcome.relinked,
            outcome.changed,
            outcome.unlinked,
        )
        log.info(
            "work_read",
            connection=entry.connection,
            work=entry.key,
            full=plan.since is None,
            reconciled=present is not None,
            items=len(items),
            added=report.added,
            changed=report.changed,
            unlinked=report.unlinked,
        )
        return report

    # --- backlinks ------------------------------------------------------------------------

    async def _backlinks(self, tracker: WorkTracker, entry: WorkDef) -> WorkReport:
        report = WorkReport()
        assert entry.key_result_id is not None  # config allows backlinks on key results only
        link = await in_thread(self.backlink_for, entry.key_result_id)
        shown = shown_digest(link.title, link.url)
        for state in await in_thread(store.backlinks_to_check, self.engine, entry.key):
            if state.linked and state.shown != shown:
                ref = await tracker.put_backlink(state.item_key, link, state.ref)
                await in_thread(
                    store.note_backlink,
                    self.engine,
                    entry.key,
                    state.item_key,
                    ref=ref,
                    shown=shown,
                    now=self.clock(),
                )
                report.backlinks_put += 1
            elif not state.linked:
                await tracker.remove_backlink(state.item_key, link, state.ref)
                await in_thread(
                    store.note_backlink,
                    self.engine,
                    entry.key,
                    state.item_key,
                    ref=None,
                    shown=None,
                    now=self.clock(),
                )
                report.backlinks_removed += 1
        return report

    async def _take_off_leftovers(self, tracker: WorkTracker, connection: str) -> WorkReport:
        """Once per process and connection: links okrsync put on items whose entry no longer
        keeps one (it left the config, or says ``backlink: false`` now) are taken off."""
        report = WorkReport()
        keeping = [e.key for e in self.entries if e.backlink and e.connection == connection]
        for left in await in_thread(store.leftover_links, self.engine, connection, keeping):
            link = Backlink(
                key_result_id=left.key_result_id,
                key_result_title=left.key_result_id,
                progress_display=None,
                status=Status.NO_DATA,
                url=None,
            )
            await tracker.remove_backlink(left.item_key, link, left.ref)
            await in_thread(
                store.note_backlink,
                self.engine,
                left.work_key,
                left.item_key,
                ref=None,
                shown=None,
                now=self.clock(),
            )
            report.backlinks_removed += 1
        return report

    def backlink_for(self, key_result_id: str) -> Backlink:
        """The link a key result's items show, from its current state in the store."""
        kr = self.config.key_result(key_result_id)
        progress: Decimal | None = None
        status = Status.NO_DATA
        with session_scope(self.engine) as session:
            row = session.get(KeyResultRow, key_result_id)
            if row is not None:
                progress = row.progress
                status = Status(row.status)
        url = None
        if self.dashboard_url:
            url = f"{self.dashboard_url.rstrip('/')}/key-results/{key_result_id}"
        return Backlink(
            key_result_id=key_result_id,
            key_result_title=kr.title,
            progress_display=backlink_progress(progress),
            status=status,
            url=url,
        )

    # --- health and timing ----------------------------------------------------------------

    def _note_health(self, connection: str, failures: list[str], attempted: int) -> None:
        """A tracker's failure shows on its connection's health like a failed fetch does; a
        success says the connection answers (a metric pass may say more)."""
        now = self.clock()
        with session_scope(self.engine) as session:
            state = self.health.row(session, connection)
            if failures:
                state.last_error = failures[0]
                state.last_error_at = now
            if attempted and len(failures) >= attempted:
                state.status = ConnectionStatus.FAILING
                state.consecutive_failures += 1
            elif attempted:
                state.status = ConnectionStatus.PARTIAL if failures else ConnectionStatus.OK
                state.consecutive_failures = 0
                state.last_ok_at = now
            session.add(state)

    async def _plan_next(self) -> None:
        """When the next entry falls due (for the daemon's sleep)."""
        now = self.clock()
        entries = self.readable
        states = await in_thread(store.read_states, self.engine, [e.key for e in entries])
        moments: list[datetime] = []
        for entry in entries:
            state = states.get(entry.key)
            plan = plan_work_read(
                entry.schedule,
                read_since=state.read_since if state else None,
                read_at=state.read_at if state else None,
                reconciled_at=state.reconciled_at if state else None,
                now=now,
                reconcile_every=self.reconcile_every,
                overlap=self.overlap,
            )
            retry = self._retry_at.get(entry.key)
            moments.append(plan.next_at if retry is None else max(plan.next_at, retry))
        self.next_due = min(moments) if moments else None
