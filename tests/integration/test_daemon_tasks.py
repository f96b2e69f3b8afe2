"""The daemon's runs are tasks of their own: a hung connection holds back only itself.

In-process, against the store (SQLite and PostgreSQL), with sources the test holds open or lets
answer: each judges a mechanism by counting fetches, never by a wall-clock bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar, Literal

import pytest
from pydantic import SecretStr
from sqlmodel import select

from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.plugins import Registry, load_registry
from okrsync.sdk.connector import ConnectionConfig, Connector, QuerySpec, Source
from okrsync.sdk.models import Query, Reading
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import ConnectionStateRow, KeyResultRow, MetricStateRow, RunRow

CONFIG = """\
version: 1
connections:
  slow: {type: held}
  fast: {type: held}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  stuck: {connection: slow, name: stuck, schedule: every 1s}
  live: {connection: fast, name: live, schedule: every 1s}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {id: stuck, title: Stuck, metric: stuck, kind: increase, start: 0, target: 100}
      - {id: live, title: Live, metric: live, kind: increase, start: 0, target: 100}
"""


@dataclass
class Control:
    """What one connection's source does: answer at once, or hold every fetch until released."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    open: int = 0
    max_open: int = 0
    cancelled: int = 0


class HeldConnection(ConnectionConfig):
    type: Literal["held"] = "held"


class HeldQuery(QuerySpec):
    name: str


class HeldSource(Source[HeldConnection, HeldQuery]):
    """Answers each query with the number of fetches of its connection so far."""

    query_model = HeldQuery
    controls: ClassVar[dict[str, Control]] = {}

    async def fetch(self, queries: Sequence[Query[HeldQuery]]) -> list[Reading]:
        control = self.controls[self.name]
        control.calls += 1
        control.open += 1
        control.max_open = max(control.max_open, control.open)
        try:
            await control.released.wait()
        except asyncio.CancelledError:
            control.cancelled += 1
            raise
        finally:
            control.open -= 1
        now = datetime.now(UTC)
        return [Reading(q.key, Decimal(control.calls), q.spec.name, now) for q in queries]

    async def fetch_one(self, query: Query[HeldQuery]) -> Reading:  # pragma: no cover
        raise NotImplementedError


@dataclass
class Running:
    app: App
    daemon: Daemon
    stop: asyncio.Event
    task: asyncio.Task[None]
    slow: Control
    fast: Control

    def value(self, kr: str) -> Decimal | None:
        with session_scope(self.app.engine) as session:
            row = session.get(KeyResultRow, kr)
            return None if row is None else row.value

    def last_error(self, connection: str) -> str:
        with session_scope(self.app.engine) as session:
            row = session.get(ConnectionStateRow, connection)
            return (row.last_error if row is not None else None) or ""


async def until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def started(
    database_url: str, text: str = CONFIG, ran: Sequence[str] = ()
) -> AsyncIterator[Running]:
    """A daemon on ``text``; the metrics in ``ran`` count as run just now (not due at once)."""
    real = load_registry()
    connectors = dict(real.connectors)
    connectors["held"] = Connector(
        type="held", summary="held", connection_model=HeldConnection, implementation=HeldSource
    )
    registry = Registry(connectors)
    config = load_config_text(text, registry.connectors)
    slow, fast = Control(), Control()
    fast.released.set()
    HeldSource.controls = {"slow": slow, "fast": fast}
    app = App.open(Settings(database_url=SecretStr(database_url)), config=config, registry=registry)
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    with session_scope(app.engine) as session:
        for name in ran:
            row = session.get(MetricStateRow, name)
            assert row is not None
            row.last_run_at = app.clock()
            session.add(row)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        yield Running(app, daemon, stop, task, slow, fast)
    finally:
        stop.set()
        slow.released.set()
        if not task.done():
            await stop_within(task, 10)
        await app.aclose()


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Running]:
    async with started(database_url) as r:
        yield r


async def test_a_hung_connection_is_skipped_while_the_other_keeps_its_schedule(
    running: Running,
) -> None:
    r = running
    await until(lambda: r.slow.calls == 1, "the slow fetch to start")
    await until(lambda: r.fast.calls >= 4, "four passes of the healthy connection")
    assert r.value("live") is not None  # recorded while the other connection hangs
    assert r.value("stuck") is None
    # asked once: each tick it fell due again, it was skipped, and its health says so
    assert (r.slow.calls, r.slow.max_open) == (1, 1)
    await until(
        lambda: "still fetching since" in r.last_error("slow"),
        "the slow connection's health to say it is still fetching",
    )
    # the healthy connection comes and goes (its tick may fall in the same pass as the slow
    # one's skipped tick: their jitters are 5 ms apart); the slow one stays, fetched once
    await until(lambda: r.daemon.fetching.keys() == {"slow"}, "a moment between fast fetches")
    r.slow.released.set()  # the vendor answers at last: recorded, and it is scheduled again
    await until(lambda: r.value("stuck") is not None, "the slow value")
    await until(lambda: r.slow.calls >= 2, "the slow connection's next pass")
    assert r.slow.max_open == 1


async def test_requested_runs_resolve_beside_a_hung_run_and_wait_for_its_connection(
    running: Running,
) -> None:
    r = running
    await until(lambda: r.slow.calls == 1, "the slow fetch to start")
    live = r.daemon.request_run(key_results=["live"], trigger="api")
    report = await asyncio.wait_for(live, 30)
    assert [rec.key_result_id for rec in report.recorded] == ["live"]
    stuck = r.daemon.request_run(key_results=["stuck"], trigger="api")
    ticks = r.daemon.ticks
    await until(lambda: r.daemon.ticks >= ticks + 2, "two more ticks")
    assert not stuck.done()  # it waits for the scheduled fetch of its connection to end
    assert r.slow.calls == 1
    r.slow.released.set()
    report = await asyncio.wait_for(stuck, 30)
    assert [rec.key_result_id for rec in report.recorded] == ["stuck"]
    assert r.slow.max_open == 1
    with session_scope(r.app.engine) as session:
        runs = session.exec(select(RunRow).where(RunRow.trigger == "api")).all()
    assert len(runs) == 2 and all(run.finished_at is not None for run in runs)


async def test_stopping_gives_every_run_the_grace_then_cancels_them_all(
    running: Running,
) -> None:
    r = running
    await until(lambda: r.slow.calls == 1, "the slow fetch to start")
    waiting = r.daemon.request_run(key_results=["stuck"], trigger="api")
    await until(lambda: r.daemon.ticks >= 2, "another tick")
    r.stop.set()
    assert not await stop_within(r.task, 0.5)  # the hung fetch outlived the grace
    assert r.slow.cancelled == 1
    assert waiting.cancelled()
    assert r.value("live") is not None and r.value("stuck") is None


async def test_stopping_lets_a_run_that_ends_within_the_grace_record(running: Running) -> None:
    r = running
    await until(lambda: r.slow.calls == 1, "the slow fetch to start")
    r.stop.set()
    await asyncio.sleep(0.2)
    assert not r.task.done()  # the run in flight holds the stop
    r.slow.released.set()
    assert await stop_within(r.task, 30)
    assert r.value("stuck") == Decimal(1)
    assert r.slow.cancelled == 0


async def test_a_metric_waiting_for_its_busy_connection_runs_as_soon_as_it_is_free(
    database_url: str,
) -> None:
    """``later`` shares the hung connection but was not part of its run: it waits (the vendor
    is not asked twice at once), a whole tick of its own is skipped and shown (the hung metric
    itself runs hourly, so the note is ``later``'s), and it runs as soon as the fetch ends."""
    text = CONFIG.replace("name: stuck, schedule: every 1s", "name: stuck, schedule: every 1h")
    text = text.replace(
        "  live: {connection: fast",
        "  later: {connection: slow, name: later, schedule: every 2s}\n  live: {connection: fast",
    ).replace(
        "      - {id: live,",
        "      - {id: later, title: Later, metric: later, kind: increase, start: 0, target: 9}\n"
        "      - {id: live,",
    )
    async with started(database_url, text, ran=["later"]) as r:
        await until(lambda: r.slow.calls == 1, "the slow fetch to start")
        await until(
            lambda: "still fetching since" in r.last_error("slow"),
            "a tick of the waiting metric to be skipped",
        )
        await until(lambda: r.fast.calls >= 3, "the healthy connection to go on")
        assert (r.slow.calls, r.slow.max_open) == (1, 1)
        assert r.value("later") is None
        r.slow.released.set()
        await until(lambda: r.value("later") is not None, "the waiting metric's run")
        assert r.slow.max_open == 1
