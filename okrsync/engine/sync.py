"""One sync pass: plan → fetch (per connection, concurrently) → evaluate → record → dispatch.

A failing connection never stops the others: each connection's fetch is isolated, its errors
become error readings, and the connection's health row says what happened. A slow one does not
hold them back either: each fetch ends by its connection's ``fetch_deadline``, and a pass is cut
into groups of connections no key result links (:func:`~okrsync.domain.planner.split_plan`), each
recorded, its metrics marked as run and its mirrors queued as soon as its own fetch is done.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, insert, update
from sqlmodel import col, select

from okrsync.config import Config
from okrsync.domain.evaluate import Evaluation, MetricReading, evaluate
from okrsync.domain.planner import PlannedKeyResult, QueryPlan, plan_queries, split_plan
from okrsync.domain.plausibility import Bounds, check_readings
from okrsync.domain.statuses import RunStatus
from okrsync.engine.closeout import closed_in_store, open_key_result_ids
from okrsync.engine.dispatcher import Dispatcher, DispatchReport
from okrsync.engine.health import ConnectionHealth
from okrsync.engine.recorder import Recorded, record_all
from okrsync.engine.runtime import Connections
from okrsync.engine.staleness import StaleWatch
from okrsync.errors import (
    ConnectorError,
    FetchDeadlineError,
)
from okrsync.redaction import Redactor
from okrsync.sdk.connector import failed_reading
from okrsync.sdk.models import Query, Reading
from okrsync.store.db import session_scope
from okrsync.store.offload import in_thread
from okrsync.store.tables import MetricStateRow, RunRow

log = structlog.get_logger()


GroupGate = Callable[[frozenset[str]], AbstractAsyncContextManager[object]]
"""Entered by each group of a run, with the group's connections, before it fetches and left once
it has recorded: the daemon's gate waits there while another run of the process is still
fetching from one of them, so two runs never fetch from one connection at once."""


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across replicas."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:10]}"


@dataclass
class RunReport:
    run_id: str
    queries: int = 0
    api_calls: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dispatch: DispatchReport = field(default_factory=DispatchReport)

    @property
    def changed(self) -> int:
        return sum(1 for r in self.recorded if r.changed)


@dataclass
class Fetched:
    readings: dict[str, Reading] = field(default_factory=dict)  # by query key
    by_connection: dict[str, list[Reading]] = field(default_factory=dict)
    api_calls: int = 0


async def fetch_all(
    plan: QueryPlan,
    connections: Connections,
    redactor: Redactor,
    *,
    paused: Mapping[str, ConnectorError] | None = None,
    on_answered: Callable[[list[Reading]], None] | None = None,
    deadlines: Mapping[str, float] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
) -> Fetched:
    """Ask every connection its queries at once; a paused connection is not asked at all.

    ``on_answered`` hears each connection's readings as soon as that connection is done, while
    the others are still being asked (a run evaluates key results meanwhile). ``deadlines``:
    seconds each connection may take (unbounded when absent). Every answer is checked for
    plausibility (``bounds``: the metrics' ``min``/``max`` by name) before anyone hears it: an
    implausible one becomes its query's error. Touches no store: ``plan`` uses it too.
    """
    paused = paused or {}
    deadlines = deadlines or {}
    bounds = bounds or {}

    async def one(name: str) -> tuple[list[Reading], int]:
        queries = plan.by_connection[name]
        if name in paused:
            answered = [failed_reading(q, paused[name]) for q in queries], 0
        else:
            answered = await fetch_connection(
                connections, name, queries, redactor, deadline=deadlines.get(name)
            )
            answered = check_readings(queries, answered[0], bounds), answered[1]
        if on_answered is not None:
            on_answered(answered[0])
        return answered

    names = sorted(plan.by_connection)
    results = await asyncio.gather(*(one(name) for name in names))
    fetched = Fetched()
    for name, (readings, calls) in zip(names, results, strict=True):
        fetched.api_calls += calls
        fetched.by_connection[name] = readings
        for reading in readings:
            fetched.readings[reading.key] = reading
    return fetched


async def fetch_connection(
    connections: Connections,
    name: str,
    queries: list[Query[Any]],
    redactor: Redactor,
    *,
    deadline: float | None = None,
) -> tuple[list[Reading], int]:
    """One connection's readings; whatever goes wrong stays with this connection.

    A fetch still running after ``deadline`` seconds is cancelled and every query gets a
    :class:`~okrsync.errors.FetchDeadlineError`: a vendor that hangs fails like one that answers
    an error, instead of holding its group's values (and the connection's next pass) for as long
    as it likes.
    """
    try:
        source = connections.source(name)
    except Exception as exc:
        error = ConnectorError(redactor.redact(str(exc)), connection=name)
        return [failed_reading(q, error) for q in queries], 0
    before = source.api_calls
    limit = asyncio.timeout(deadline)
    try:
        async with limit:
            readings = await source.fetch(queries)
    except ConnectorError as exc:
        readings = [failed_reading(q, exc.for_subject(name, q.subject)) for q in queries]
    except Exception as exc:
        if isinstance(exc, TimeoutError) and limit.expired() and deadline is not None:
            log.warning("fetch_deadline_passed", connection=name, deadline=deadline)
            late = FetchDeadlineError(deadline, connection=name)
            readings = [failed_reading(q, late.for_subject(name, q.subject)) for q in queries]
        else:  # a connector bug is that connection's problem only
            log.exception("connector_crashed", connection=name)
            crashed = ConnectorError(
                redactor.redact(f"connector failed: {type(exc).__name__}: {exc}"),
                connection=name,
            )
            readings = [failed_reading(q, crashed.for_subject(name, q.subject)) for q in queries]
    answered = {r.key for r in readings}
    for query in queries:
        if query.key not in answered:
            error = ConnectorError("the source gave no answer", connection=name)
            readings.append(failed_reading(query, error.for_subject(name, query.subject)))
    return readings, source.api_calls - before


def evaluate_plan(
    config: Config, plan: QueryPlan, readings: Mapping[str, Reading], run_id: str, now: datetime
) -> list[tuple[Evaluation, PlannedKeyResult]]:
    """Evaluate every key result of the plan from the readings. Pure."""
    evaluator = PlanEvaluator(config, plan, run_id, lambda: now)
    evaluator.answered(list(readings.values()))
    return evaluator.results()


class PlanEvaluator:
    """Evaluates each key result of a plan as soon as every query it reads has been answered.

    Fed one connection's readings at a time while the other connections are still being asked,
    so the CPU of evaluation overlaps the slowest vendor's network time instead of following it.
    A key result whose readings never all arrive is evaluated by :meth:`results` with what came.
    """

    def __init__(
        self, config: Config, plan: QueryPlan, run_id: str, clock: Callable[[], datetime]
    ) -> None:
        self.config = config
        self.plan = plan
        self.run_id = run_id
        self.clock = clock
        self.readings: dict[str, Reading] = {}
        self._done: list[tuple[Evaluation, PlannedKeyResult] | None] = [None] * len(
            plan.key_results
        )
        self._missing: list[set[str]] = []  # per key result: query keys not answered yet
        self._waiting: dict[str, list[int]] = {}  # query key -> key results waiting for it
        for index, item in enumerate(plan.key_results):
            keys = {plan.key_for[(n, item.cycle.id)] for n in item.key_result.metric_names()}
            self._missing.append(keys)
            for key in keys:
                self._waiting.setdefault(key, []).append(index)

    def answered(self, readings: list[Reading]) -> None:
        now = self.clock()
        ready: list[int] = []
        for reading in readings:
            self.readings[reading.key] = reading
            for index in self._waiting.pop(reading.key, ()):
                missing = self._missing[index]
                missing.discard(reading.key)
                if not missing:
                    ready.append(index)
        for index in ready:
            self._evaluate(index, now)

    @property
    def waiting(self) -> int:
        """How many key results still wait for a reading."""
        return sum(1 for done in self._done if done is None)

    def results(self) -> list[tuple[Evaluation, PlannedKeyResult]]:
        """Every key result's evaluation, in plan order."""
        now = self.clock()
        out = []
        for index, done in enumerate(self._done):
            out.append(done if done is not None else self._evaluate(index, now))
        return out

    def _evaluate(self, index: int, now: datetime) -> tuple[Evaluation, PlannedKeyResult]:
        item = self.plan.key_results[index]
        by_metric: dict[str, MetricReading] = {}
        for name in item.key_result.metric_names():
            reading = self.readings.get(self.plan.key_for[(name, item.cycle.id)])
            if reading is not None:
                connection = self.config.metrics[name].connection
                by_metric[name] = MetricReading(name, connection, reading, self.run_id)
        done = (evaluate(item.key_result, item.cycle, by_metric, now), item)
        self._done[index] = done
        return done


class SyncService:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        connections: Connections,
        *,
        redactor: Redactor,
        clock: Callable[[], datetime],
        instance_id: str,
        dispatcher: Dispatcher,
    ) -> None:
        self.engine = engine
        self.config = config
        self.connections = connections
        self.redactor = redactor
        self.clock = clock
        self.instance_id = instance_id
        self.dispatcher = dispatcher
        self.stale = StaleWatch(engine, config, clock=clock)
        self.health = ConnectionHealth(
            engine, config.connection_types, clock=clock, redactor=redactor
        )

    async def run_once(
        self,
        *,
        metrics: Collection[str] | None = None,
        key_results: Collection[str] | None = None,
        trigger: str = "manual",
        dispatch: bool = True,
        gate: GroupGate | None = None,
    ) -> RunReport:
        """One run (one ``runs`` row) over the key results that read ``metrics`` or are named.

        Its groups of connections (see :func:`split_plan`) run side by side, and each records
        its values, marks its metrics as run and queues its mirrors as soon as its own fetch is
        done: a hung vendor holds back only the key results that read it, not the run's others.
        ``gate`` is entered by each group around its fetch and record. With ``dispatch`` the
        outbox is delivered once every group is done.
        """
        started = self.clock()
        report = RunReport(new_run_id(started))
        closed = await in_thread(self._closed_cycles)
        if closed:  # a closed cycle's key results are frozen: nothing of theirs is fetched
            still_open = open_key_result_ids(self.config, closed)
            key_results = still_open if key_results is None else still_open & set(key_results)
        plan = plan_queries(self.config, metrics=metrics, key_results=key_results)
        report.queries = plan.query_count
        run = RunRow(
            id=report.run_id,
            trigger=trigger,
            started_at=started,
            queries=report.queries,
            instance_id=self.instance_id,
        )
        await in_thread(self._start_run, run)
        groups = split_plan(plan)
        log.info(
            "run_started",
            run_id=report.run_id,
            trigger=trigger,
            queries=report.queries,
            groups=len(groups),
        )
        # Every group is let finish even when another fails (what it fetched is recorded); the
        # first failure is raised once they all ended.
        ended = await asyncio.gather(
            *(self._run_group(group, report, gate) for group in groups), return_exceptions=True
        )
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome
        if dispatch:
            await in_thread(
                self.stale.announce_due
            )  # values this run could not confirm may be stale
            report.dispatch = await self.dispatcher.dispatch_due()
        await in_thread(self._finish_run, report)
        return report

    def _closed_cycles(self) -> set[str]:
        with session_scope(self.engine) as session:
            return set(closed_in_store(session))

    def _start_run(self, run: RunRow) -> None:
        with session_scope(self.engine) as session:
            session.add(run)

    async def _run_group(self, plan: QueryPlan, report: RunReport, gate: GroupGate | None) -> None:
        """Fetch, evaluate and record one group of a run, as one unit."""
        async with gate(plan.connections) if gate is not None else nullcontext():
            evaluator = PlanEvaluator(self.config, plan, report.run_id, self.clock)
            await self.fetch(plan, report, on_answered=evaluator.answered)
            evaluated = evaluator.results()
            now = self.clock()
            # The store's work off the event loop: health, webhooks and the API answer while
            # thousands of key results are recorded (a thread per group, each its own session).
            recorded = await in_thread(self._record, plan, evaluated, report.run_id, now)
            report.recorded += recorded
            report.errors += [r.error for r in recorded if r.error]

    def _record(
        self,
        plan: QueryPlan,
        evaluated: list[tuple[Evaluation, PlannedKeyResult]],
        run_id: str,
        now: datetime,
    ) -> list[Recorded]:
        recorded = record_all(
            self.engine, evaluated, run_id=run_id, now=now, redactor=self.redactor
        )
        self._mark_metrics_ran(plan, now)
        return recorded

    async def fetch(
        self,
        plan: QueryPlan,
        report: RunReport,
        on_answered: Callable[[list[Reading]], None] | None = None,
    ) -> dict[str, Reading]:
        """Fetch the plan's queries, each connection within its ``fetch_deadline``, and keep
        each connection's health row current."""
        paused = await in_thread(self.health.paused, list(plan.by_connection))
        deadlines = {
            name: self.config.fetch_deadline(name).total_seconds() for name in plan.by_connection
        }
        fetched = await fetch_all(
            plan,
            self.connections,
            self.redactor,
            paused=paused,
            on_answered=on_answered,
            deadlines=deadlines,
            bounds={name: self.config.metrics[name].bounds for name in plan.metric_names},
        )
        report.api_calls += fetched.api_calls
        answered = {n: r for n, r in fetched.by_connection.items() if n not in paused}
        await in_thread(self.health.record_passes, answered)
        return fetched.readings

    def _mark_metrics_ran(self, plan: QueryPlan, now: datetime) -> None:
        """Two UPDATEs per 500 metrics, no ORM objects (one read and write per metric showed in
        the 10,000 key-result benchmark); the claim of this replica ends with the run."""
        names = sorted({name for (name, _cycle) in plan.key_for})
        name_col, owner_col = col(MetricStateRow.name), col(MetricStateRow.lease_owner)
        with session_scope(self.engine) as session:
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                present = set(session.exec(select(MetricStateRow.name).where(name_col.in_(chunk))))
                missing = [{"name": name} for name in chunk if name not in present]
                if missing:
                    session.execute(insert(MetricStateRow), missing)
                session.execute(
                    update(MetricStateRow).where(name_col.in_(chunk)).values(last_run_at=now)
                )
                session.execute(
                    update(MetricStateRow)
                    .where(name_col.in_(chunk), owner_col == self.instance_id)
                    .values(lease_owner=None, lease_until=None)
                )

    def _finish_run(self, report: RunReport) -> None:
        finished = self.clock()
        with session_scope(self.engine) as session:
            run = session.get(RunRow, report.run_id)
            if run is None:
                return
            run.finished_at = finished
            run.api_calls = report.api_calls
            run.changed = report.changed
            run.errors = len(report.errors)
            run.status = RunStatus.OK if not report.errors else RunStatus.PARTIAL
            run.detail = {
                "errors": report.errors[:50],
                "delivered": report.dispatch.delivered,
                "delivery_failures": report.dispatch.failed,
            }
            session.add(run)
        log.info(
            "run_finished",
            run_id=report.run_id,
            queries=report.queries,
            api_calls=report.api_calls,
            changed=report.changed,
            errors=len(report.errors),
            delivered=report.dispatch.delivered,
        )
