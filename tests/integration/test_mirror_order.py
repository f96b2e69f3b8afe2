"""A mirror never shows an older state after a newer one, across replicas (SQLite and PostgreSQL).

Two dispatchers with different owners ("replicas") share one store. The sink is an in-process
board that remembers what each mirror shows and every push it received, and can be held
mid-push, so each test sets up one interleaving exactly instead of hoping for it: a push in
flight while a newer state is recorded, a replica that stalls past its lease, a push that lands
late anyway, a push cut at its lease's end. Also: the health of a connection that is only a
mirror, and a pass that meets a key result missing from the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.dispatcher import DispatchReport
from okrsync.errors import ConnectorError, RetriableError
from okrsync.plugins import Registry, load_registry
from okrsync.sdk.connector import ConnectionConfig, Connector, MirrorSpec, Sink
from okrsync.sdk.models import KeyResultUpdate, PushResult
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import ConnectionStateRow, DeliveryRow, KeyResultRow, MirrorRow, RunRow


class BoardConnection(ConnectionConfig):
    type: Literal["board"] = "board"


class BoardMirror(MirrorSpec):
    pass


class BoardSink(Sink[BoardConnection, BoardMirror]):
    """Shows one value per mirror; a push can be held at ``gate`` or made to fail."""

    mirror_model = BoardMirror
    shown: ClassVar[dict[str, Decimal | None]] = {}
    pushes: ClassVar[list[Decimal | None]] = []
    gate: ClassVar[asyncio.Event | None] = None
    held: ClassVar[asyncio.Event | None] = None  # set while a push waits at the gate
    fail: ClassVar[bool] = False
    lost: ClassVar[bool] = False

    async def push(
        self, update: KeyResultUpdate, mirror: BoardMirror, previous_ref: str | None
    ) -> PushResult:
        if self.gate is not None:
            assert self.held is not None
            self.held.set()
            await self.gate.wait()
        if self.fail:
            raise ConnectorError("the board is down", connection=self.name, status_code=400)
        if self.lost:  # the request went out and no answer came back
            raise RetriableError("timed out after 10s", connection=self.name)
        ref = previous_ref or f"card-{len(self.shown) + 1}"
        self.shown[ref] = update.value
        self.pushes.append(update.value)
        return PushResult(ref=ref)

    @classmethod
    def reset(cls) -> None:
        cls.shown.clear()
        cls.pushes.clear()
        cls.gate = None
        cls.held = asyncio.Event()
        cls.fail = False
        cls.lost = False


CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  board: {type: board}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals"}
objectives:
  - id: o
    title: Objective
    cycle: q4
    key_results:
      - id: deals
        title: Ten deals
        metric: deals
        kind: increase
        start: 0
        target: 10
        mirrors: [{connection: board}]
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 12, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    database_url: str
    warehouse: Path
    registry: Registry
    clock: Clock
    apps: list[App] = field(default_factory=list)

    def replica(self, instance_id: str, lease: float = 120.0, push_timeout: float = 300) -> App:
        settings = Settings(
            database_url=SecretStr(self.database_url),
            instance_id=instance_id,
            lease_seconds=lease,
            push_timeout_seconds=push_timeout,
        )
        text = CONFIG.replace("WAREHOUSE", str(self.warehouse))
        app = App.open(
            settings,
            config=load_config_text(text, self.registry.connectors),
            registry=self.registry,
            clock=self.clock,
        )
        app.apply_definitions()
        self.apps.append(app)
        return app

    def add_deal(self) -> None:
        with sqlite3.connect(self.warehouse) as db:
            db.execute("INSERT INTO deals DEFAULT VALUES")

    def deliveries(self) -> list[DeliveryRow]:
        with session_scope(self.apps[0].engine) as session:
            return list(session.exec(select(DeliveryRow).order_by(col(DeliveryRow.seq))))

    def mirror(self) -> MirrorRow:
        with session_scope(self.apps[0].engine) as session:
            (row,) = session.exec(select(MirrorRow))
            return row


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> World:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO deals DEFAULT VALUES")
    connectors = dict(load_registry().connectors)
    connectors["board"] = Connector(
        type="board", summary="board", connection_model=BoardConnection, implementation=BoardSink
    )
    BoardSink.reset()
    return World(database_url, warehouse, Registry(connectors), Clock())


@pytest.fixture(autouse=True)
async def _close(world: World) -> AsyncIterator[None]:
    yield
    for app in world.apps:
        await app.aclose()


async def eventually(condition: Callable[[], bool]) -> None:
    """Until a row of the store or the board says so (neither has an event to wait on)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_one_push_in_flight_per_mirror_across_replicas(world: World) -> None:
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)  # 1 deal: queued as #1
    BoardSink.gate = asyncio.Event()
    pushing = asyncio.create_task(a.dispatcher.dispatch_due())
    assert BoardSink.held is not None
    await asyncio.wait_for(BoardSink.held.wait(), 30)  # A is pushing #1 and has not finished
    world.add_deal()
    await b.sync.run_once(dispatch=False)  # 2 deals: queued as #2
    assert (await b.dispatcher.dispatch_due()).delivered == 0  # the mirror is A's meanwhile
    BoardSink.gate.set()
    assert (await pushing).delivered == 2  # #1, then (its lease given back) #2
    assert (await b.dispatcher.dispatch_due()).delivered == 0
    assert BoardSink.pushes == [1, 2]
    assert list(BoardSink.shown.values()) == [2]
    assert [(d.seq, d.status) for d in world.deliveries()] == [(1, "done"), (2, "done")]
    assert world.mirror().delivered_seq == 2
    assert world.mirror().lease_owner is None


async def test_a_stalled_replica_never_pushes_an_older_state(world: World) -> None:
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)
    (stalled,) = a.dispatcher._claim(DispatchReport())  # A claims #1, then stalls
    world.add_deal()
    await b.sync.run_once(dispatch=False)
    assert (await b.dispatcher.dispatch_due()).delivered == 0  # A's lease holds the mirror
    world.clock.now += timedelta(minutes=2, seconds=1)  # ... until it runs out
    assert (await b.dispatcher.dispatch_due()).delivered == 0  # and A's push had time to land
    world.clock.now += b.dispatcher.settle
    report = await b.dispatcher.dispatch_due()
    assert (report.delivered, report.superseded) == (1, 1)
    await a.dispatcher._deliver(stalled, DispatchReport())  # A wakes up and goes on
    assert BoardSink.pushes == [2]  # #1 was never pushed
    first, second = world.deliveries()
    assert (first.status, second.status) == ("superseded", "done")
    assert "newer state (#2)" in (first.last_error or "")


async def test_a_row_the_mirror_has_outgrown_is_superseded_not_pushed(world: World) -> None:
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)
    (claimed,) = a.dispatcher._claim(DispatchReport())
    with session_scope(a.engine) as session:  # meanwhile the mirror came to show #5
        mirror = session.exec(select(MirrorRow)).one()
        mirror.delivered_seq = 5
        session.add(mirror)
    report = DispatchReport()
    await a.dispatcher._deliver(claimed, report)
    assert BoardSink.pushes == []
    assert report.superseded == 1
    (row,) = world.deliveries()
    assert row.status == "superseded" and "shows a newer state (#5)" in (row.last_error or "")
    assert world.mirror().lease_owner is None  # given back
    assert (await b.dispatcher.dispatch_due()).delivered == 0


async def test_a_push_that_lands_late_is_followed_by_the_newer_state_again(world: World) -> None:
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)
    (late,) = a.dispatcher._claim(DispatchReport())
    world.clock.now += timedelta(minutes=3)  # A's lease runs out while its push hangs
    world.add_deal()
    await b.sync.run_once(dispatch=False)
    assert (await b.dispatcher.dispatch_due()).delivered == 1  # the mirror shows #2
    BoardSink.shown["card-1"] = Decimal(1)  # ... then A's push of #1 lands after all
    a.dispatcher._done(late.row, "card-1")
    assert world.mirror().delivered_seq == 1  # the store says what the mirror shows
    assert (await b.dispatcher.dispatch_due()).delivered == 1  # and #2 goes out again
    assert BoardSink.shown == {"card-1": 2}
    assert world.mirror().delivered_seq == 2


async def test_a_push_is_cut_at_its_timeout_and_counts_as_a_failed_attempt(world: World) -> None:
    a = world.replica("A", push_timeout=1.0)
    await a.sync.run_once(dispatch=False)
    BoardSink.gate = asyncio.Event()  # never set: the board hangs
    report = await asyncio.wait_for(a.dispatcher.dispatch_due(), timeout=60)
    assert (report.delivered, report.failed) == (0, 1)
    (row,) = world.deliveries()
    assert row.status == "pending" and row.attempts == 1
    assert "no answer within 1s" in (row.last_error or "")
    BoardSink.gate.set()


async def test_a_push_longer_than_the_lease_keeps_its_mirror(world: World) -> None:
    """The lease is renewed while the push runs: nobody else pushes to that mirror meanwhile."""
    a, b = world.replica("A", lease=0.3), world.replica("B", lease=0.3)
    await a.sync.run_once(dispatch=False)
    BoardSink.gate = asyncio.Event()
    pushing = asyncio.create_task(a.dispatcher.dispatch_due())
    assert BoardSink.held is not None
    await asyncio.wait_for(BoardSink.held.wait(), 30)
    world.add_deal()
    await b.sync.run_once(dispatch=False)
    for _ in range(3):  # many leases (and settle times) pass while A's push is in flight
        world.clock.now += timedelta(seconds=10)
        renewed = world.clock.now + timedelta(seconds=0.3)
        await eventually(lambda at=renewed: world.mirror().lease_until == at)  # renewed by A
        assert (await b.dispatcher.dispatch_due()).delivered == 0
    BoardSink.gate.set()
    assert (await pushing).delivered == 2
    assert BoardSink.pushes == [1, 2]


async def test_a_hung_push_holds_no_other_mirror(world: World) -> None:
    a = world.replica("A")
    await a.sync.run_once(dispatch=False)
    BoardSink.gate = asyncio.Event()
    wake = asyncio.Event()
    pushing = asyncio.create_task(a.dispatcher.dispatch_due(wake=wake))
    assert BoardSink.held is not None
    await asyncio.wait_for(BoardSink.held.wait(), 30)
    with session_scope(a.engine) as session:  # a second mirror, and a state queued for it
        session.add(MirrorRow(key="other", key_result_id="deals", connection="board", last_seq=1))
        (queued,) = session.exec(select(DeliveryRow))
        session.add(
            DeliveryRow(
                mirror_key="other",
                seq=1,
                key_result_id="deals",
                idempotency_key="other-1",
                payload=queued.payload,
                created_at=world.clock.now,
                next_attempt_at=world.clock.now,
            )
        )
    a.dispatcher.mirrors = {
        **a.dispatcher.mirrors,
        "other": a.dispatcher.mirrors[queued.mirror_key],
    }
    BoardSink.gate = None  # pushes from now on go through
    wake.set()
    await eventually(lambda: bool(BoardSink.pushes))
    assert not pushing.done()  # the first push still hangs
    pushing.cancel()
    with suppress(asyncio.CancelledError):
        await pushing


async def test_after_a_failed_push_the_mirror_stays_quiet_for_its_settle_time(
    world: World,
) -> None:
    """The vendor may still apply a push the client gave up on: nobody pushes to the mirror (or
    looks for what that push created) until it has had time to land."""
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)
    BoardSink.lost = True
    assert (await a.dispatcher.dispatch_due()).failed == 1
    BoardSink.lost = False
    settle = a.dispatcher.settle
    assert settle == timedelta(seconds=15)  # the lease (120 s), 15 s at the most
    mirror = world.mirror()
    assert mirror.lease_owner == "A" and mirror.lease_until == world.clock.now  # then settles
    world.add_deal()
    await b.sync.run_once(dispatch=False)  # a newer state, due at once
    assert (await b.dispatcher.dispatch_due()).delivered == 0
    world.clock.now += settle + timedelta(milliseconds=1)
    assert (await b.dispatcher.dispatch_due()).delivered == 1
    assert BoardSink.pushes == [2]


async def test_after_the_vendors_own_error_answer_the_mirror_is_free_at_once(
    world: World,
) -> None:
    a, b = world.replica("A"), world.replica("B")
    await a.sync.run_once(dispatch=False)
    BoardSink.fail = True  # a 400: the vendor answered, nothing is in flight
    assert (await a.dispatcher.dispatch_due()).failed == 1
    BoardSink.fail = False
    assert world.mirror().lease_owner is None
    world.add_deal()
    await b.sync.run_once(dispatch=False)
    assert (await b.dispatcher.dispatch_due()).delivered == 1


async def test_leases_released_at_start_free_mirrors_after_their_settle_time(
    world: World,
) -> None:
    a = world.replica("A")
    await a.sync.run_once(dispatch=False)
    a.dispatcher._claim(DispatchReport())  # A claims, then is killed mid-push
    restarted = world.replica("A")
    assert restarted.dispatcher.release_leases(only_mine=True) == 1
    assert (await restarted.dispatcher.dispatch_due()).delivered == 0  # settling
    world.clock.now += restarted.dispatcher.settle + timedelta(milliseconds=1)
    assert (await restarted.dispatcher.dispatch_due()).delivered == 1  # not the 120 s lease


async def test_a_mirror_only_connection_shows_the_health_of_its_deliveries(world: World) -> None:
    a = world.replica("A")
    BoardSink.fail = True
    await a.sync.run_once()
    with session_scope(a.engine) as session:
        board = session.get(ConnectionStateRow, "board")
        assert board is not None
        assert board.status == "failing" and "the board is down" in (board.last_error or "")
    BoardSink.fail = False
    world.clock.now += timedelta(minutes=1)
    assert (await a.dispatcher.dispatch_due()).delivered == 1
    with session_scope(a.engine) as session:
        board = session.get(ConnectionStateRow, "board")
        assert board is not None and board.status == "ok" and board.consecutive_failures == 0
        warehouse = session.get(ConnectionStateRow, "warehouse")
        assert warehouse is not None and warehouse.status == "ok"  # a source: its fetches


async def test_a_key_result_gone_from_the_store_ends_the_run_with_its_error(world: World) -> None:
    a = world.replica("A")
    with session_scope(a.engine) as session:
        session.delete(session.get(KeyResultRow, "deals"))
    report = await a.sync.run_once()
    assert any("'deals' is not in the store" in e for e in report.errors)
    with session_scope(a.engine) as session:
        run = session.get(RunRow, report.run_id)
        assert run is not None and run.status == "partial" and run.finished_at is not None


async def test_sequences_follow_the_recorded_order(world: World) -> None:
    a, b = world.replica("A"), world.replica("B")
    for replica in (a, b, a, b):
        world.add_deal()
        await replica.sync.run_once(dispatch=False)
    rows = world.deliveries()
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.payload["value"] for r in rows] == ["2", "3", "4", "5"]
    report = await b.dispatcher.dispatch_due()
    assert (report.delivered, report.superseded) == (1, 3)
    assert BoardSink.pushes == [5]
