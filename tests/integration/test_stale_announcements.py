"""A value older than its ``stale_after`` is announced to the mirrors once, and its end too.

Runs on SQLite and PostgreSQL with the real engine: a SQL source that stops answering, a sink
that records what it is told, the daemon's stale watch and the recorder.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import ClassVar, Literal

import pytest

from okrsync.engine.staleness import StaleWatch
from okrsync.plugins import Registry
from okrsync.sdk.connector import ConnectionConfig, Connector, MirrorSpec, Sink
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow
from tests.integration import test_sync_service
from tests.integration.test_sync_service import World

world = test_sync_service.world  # the fixture: a store, a SQL source, sinks


class BoardConnection(ConnectionConfig):
    type: Literal["board"] = "board"


class BoardMirror(MirrorSpec):
    lane: str = "okr"


class BoardSink(Sink[BoardConnection, BoardMirror]):
    """Keeps every state it is told, per lane; edits one card per mirror like a chat message."""

    mirror_model = BoardMirror
    supports_digest = True
    told: ClassVar[list[tuple[str, KeyResultUpdate]]] = []
    digests: ClassVar[list[ObjectiveUpdate]] = []

    async def push(
        self, update: KeyResultUpdate, mirror: BoardMirror, previous_ref: str | None
    ) -> PushResult:
        self.told.append((mirror.lane, update))
        return PushResult(ref=f"card-{mirror.lane}")

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: BoardMirror, previous_ref: str | None
    ) -> PushResult:
        self.digests.append(update)
        return PushResult(ref="digest")


def config_text(world: World, *, announce: bool = True, digest: bool = False) -> str:
    silent = "" if announce else ", announce_stale: false"
    text = world.text.replace(
        "  notes: {type: notes}\n", "  notes: {type: notes}\n  board: {type: board}\n"
    )
    text = text.replace(
        "        mirrors: [{connection: hook}, {connection: notes}]",
        "        stale_after: 1h\n"
        "        mirrors: [{connection: board, lane: a}, "
        f"{{connection: board, lane: b{silent}}}]",
    )
    if digest:
        text = text.replace(
            "    cycle: q4\n    key_results:",
            "    cycle: q4\n    mirrors: [{connection: board, lane: digest}]\n    key_results:",
        )
    return text


@pytest.fixture
def board(world: World) -> World:
    sink = Connector(
        type="board", summary="board", connection_model=BoardConnection, implementation=BoardSink
    )
    world.registry = Registry({**world.registry.connectors, "board": sink})
    BoardSink.told.clear()
    BoardSink.digests.clear()
    return world


def break_source(world: World) -> None:
    with sqlite3.connect(world.warehouse) as db:
        db.execute("ALTER TABLE deals RENAME TO deals_gone")


def mend_source(world: World) -> None:
    with sqlite3.connect(world.warehouse) as db:
        db.execute("ALTER TABLE deals_gone RENAME TO deals")


async def sync(world: World, text: str) -> None:
    app = world.app(text)
    try:
        app.apply_definitions()
        await app.sync.run_once()
    finally:
        await app.aclose()


def lane(name: str) -> list[tuple[bool, str | None]]:
    return [(u.stale, str(u.value)) for lane, u in BoardSink.told if lane == name]


async def test_a_value_past_its_deadline_is_announced_once_and_its_end_too(board: World) -> None:
    world, text = board, config_text(board)
    confirmed = world.clock.now
    await sync(world, text)
    assert lane("a") == [(False, "1")]
    break_source(world)
    world.clock.now += timedelta(minutes=59)
    await sync(world, text)  # the source fails; the value is 59 minutes old: not stale yet
    assert lane("a") == [(False, "1")]
    world.clock.now += timedelta(minutes=2)
    await sync(world, text)
    assert lane("a") == [(False, "1"), (True, "1")]
    stale = BoardSink.told[-1][1]
    assert stale.checked_at == confirmed  # the mirror can say since when
    for _ in range(3):  # the episode is announced once, however often the loop passes
        world.clock.now += timedelta(minutes=30)
        await sync(world, text)
    assert lane("a") == [(False, "1"), (True, "1")]
    mend_source(world)  # confirmed again, same value: no measurement, but the mirror hears
    world.clock.now += timedelta(minutes=5)
    await sync(world, text)
    assert lane("a") == [(False, "1"), (True, "1"), (False, "1")]
    assert BoardSink.told[-1][1].checked_at == world.clock.now
    await sync(world, text)
    assert len(lane("a")) == 3


async def test_a_mirror_can_stay_silent_about_staleness(board: World) -> None:
    world, text = board, config_text(board, announce=False)
    await sync(world, text)
    break_source(world)
    world.clock.now += timedelta(hours=2)
    await sync(world, text)
    mend_source(world)
    world.add_deal()
    world.clock.now += timedelta(minutes=1)
    await sync(world, text)
    assert lane("a") == [(False, "1"), (True, "1"), (False, "2")]
    assert lane("b") == [(False, "1"), (False, "2")]  # told of changes only


async def test_a_change_that_ends_staleness_is_pushed_once_per_mirror(board: World) -> None:
    world, text = board, config_text(board)
    await sync(world, text)
    break_source(world)
    world.clock.now += timedelta(hours=2)
    await sync(world, text)
    mend_source(world)
    world.add_deal()
    world.add_deal()
    world.clock.now += timedelta(minutes=1)
    await sync(world, text)
    assert lane("a") == [(False, "1"), (True, "1"), (False, "3")]


async def test_a_digest_marks_the_stale_key_result(board: World) -> None:
    world, text = board, config_text(board, digest=True)
    await sync(world, text)
    break_source(world)
    world.clock.now += timedelta(hours=2)
    await sync(world, text)
    latest = BoardSink.digests[-1]
    assert [(kr.key_result_id, kr.stale) for kr in latest.key_results] == [
        ("deals", True),
        ("other", False),  # no stale_after: never stale
    ]


async def test_replicas_announce_an_episode_once_and_wake_when_the_next_one_is_due(
    board: World,
) -> None:
    world, text = board, config_text(board)
    await sync(world, text)
    first, second = world.app(text), world.app(text)
    try:
        watches = [StaleWatch(a.engine, a.config, clock=world.clock) for a in (first, second)]
        queued, wake = watches[0].announce_due()
        assert queued == 0
        assert wake == world.clock.now + timedelta(hours=1, milliseconds=1)
        world.clock.now += timedelta(hours=1, seconds=1)
        assert watches[0].announce_due() == (2, None)  # lanes a and b; nothing else pending
        assert watches[1].announce_due() == (0, None)
        with session_scope(first.engine) as session:
            row = session.get(KeyResultRow, "deals")
            assert row is not None and row.stale_announced_for == row.checked_at
    finally:
        await first.aclose()
        await second.aclose()
