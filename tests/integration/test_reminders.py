"""Check-in reminders: once per tick across two replicas and a restart, on SQLite and
PostgreSQL, sent to the Slack fake over a real socket.

Two replicas (two claimers, each with its own engine, on one store) reach Monday 09:00 at once:
one message per owner, not two. A replica started again within the tick sends nothing. At the
next tick, what was checked in (or confirmed by its source) since is left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from connectors.slack.fake import BOT_TOKEN, BOT_USER, SlackState, slack_app
from okrsync.api.check_ins import CheckInRequest, check_in
from okrsync.app import App
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.engine.reminders import Reminders, reminder_groups
from okrsync.engine.runtime import Connections
from okrsync.redaction import Redactor
from okrsync.sandbox.server import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import make_engine, session_scope
from okrsync.store.tables import KeyResultRow, ReminderRow
from tests.integration.api_support import write_config

MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a tick of "0 9 * * 1"

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  team_chat: {type: slack, token: "BOT", base_url: "SLACK"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals", schedule: every 1h}
defaults: {}
objectives:
  - id: sales
    title: Grow sales
    cycle: 2026-Q4
    owner: alice
    key_results:
      - id: partners
        title: Sign 5 launch partners
        kind: increase
        start: 0
        target: 5
        check_ins: &weekly {every: "0 9 * * 1", remind: {connection: team_chat, channel: "#okrs"}}
      - id: deals
        title: Ten deals
        metric: deals
        kind: increase
        start: 0
        target: 10
        stale_after: 1h
        check_ins: *weekly
  - id: platform
    title: Keep the platform up
    cycle: 2026-Q4
    owner: bob
    key_results:
      - {id: uptime, title: Reach 99.9% uptime, kind: increase, start: 99, target: 99.9,
         check_ins: *weekly}
      - {id: quiet, title: Not reminded, kind: increase, start: 0, target: 1}
"""


@pytest.fixture
def slack() -> Iterator[tuple[SandboxServer, SlackState]]:
    app = slack_app()
    with SandboxServer(app, name="slack") as server:
        yield server, app.state.slack


@pytest.fixture
def app(
    tmp_path: Path, database_url: str, slack: tuple[SandboxServer, SlackState]
) -> Iterator[App]:
    text = CONFIG.replace("BOT", BOT_TOKEN).replace("SLACK", f"{slack[0].url}/api/")
    settings = Settings(
        config=write_config(tmp_path, text=text),
        database_url=SecretStr(database_url),
        secrets_dir=tmp_path,
    )
    opened = App.open(settings)
    opened.apply_definitions()
    asyncio.run(opened.sync.run_once(trigger="manual", dispatch=False))
    try:
        yield opened
    finally:
        asyncio.run(opened.aclose())


def confirmed(app: App, kr: str, at: datetime) -> None:
    """What a source confirming the value at ``at`` leaves in the store."""
    with session_scope(app.engine) as session:
        row = session.get(KeyResultRow, kr)
        assert row is not None
        row.checked_at = at
        session.add(row)


def bot_messages(state: SlackState) -> list[str]:
    return [m.text for m in state.channel_messages("C0OKRS0001") if m.user == BOT_USER]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_groups_follow_owner_channel_and_schedule(app: App) -> None:
    groups = {g.owner: [kr.id for kr in g.key_results] for g in reminder_groups(app.config)}
    assert groups == {"alice": ["partners", "deals"], "bob": ["uptime"]}


def test_once_per_tick_across_two_replicas_and_a_restart(
    app: App, slack: tuple[SandboxServer, SlackState], database_url: str
) -> None:
    state = slack[1]
    confirmed(app, "deals", MONDAY - timedelta(hours=2))  # stale since 08:00
    second_engine = make_engine(database_url)  # the other replica's own connections
    try:
        asyncio.run(scenario(app, state, second_engine))
    finally:
        second_engine.dispose()


def replica(app: App, engine: Engine, chat: Connections, name: str, at: datetime) -> Reminders:
    return Reminders(engine, app.config, chat.sink, owner=name, clock=lambda: at)


async def scenario(app: App, state: SlackState, second_engine: Engine) -> None:
    chat = Connections(app.config, app.connections.connectors)  # clients of this event loop
    try:
        now = MONDAY + timedelta(minutes=1)
        pair = [
            replica(app, app.engine, chat, "replica-a", now),
            replica(app, second_engine, chat, "replica-b", now),
        ]
        wakes = await asyncio.gather(*(r.send_due() for r in pair))
        assert wakes == [MONDAY + timedelta(days=7)] * 2
        assert sum(r.sent for r in pair) == 2  # alice's message and bob's, once each
        assert len(bot_messages(state)) == 2
        with session_scope(app.engine) as session:
            listed = sorted(row.key_results for row in session.exec(select(ReminderRow)))
        assert listed == [1, 2]  # bob: uptime; alice: partners and deals

        restarted = replica(app, app.engine, chat, "replica-a", MONDAY + timedelta(hours=3))
        await restarted.send_due()
        assert restarted.sent == 0 and len(bot_messages(state)) == 2

        # alice checks in on partners, the source confirms deals: next Monday only bob's
        request = CheckInRequest("partners", value=Decimal(1), confidence=6, author="alice")
        check_in(app.engine, app.config, Redactor(), request, MONDAY + timedelta(hours=4))
        next_monday = MONDAY + timedelta(days=7, minutes=2)
        confirmed(app, "deals", next_monday - timedelta(minutes=5))
        week_two = replica(app, app.engine, chat, "replica-b", next_monday)
        await week_two.send_due()
        assert week_two.sent == 1
        newest = state.channel_messages("C0OKRS0001")[-1]
        assert newest.text.startswith("bob: ")
        blocks = newest.blocks or []
        assert "Reach 99.9% uptime" in blocks[0]["text"]["text"]
        assert "/okr" in blocks[1]["elements"][0]["text"]  # no check_in_url: the hint
    finally:
        await chat.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_send_gives_the_tick_back(
    app: App, slack: tuple[SandboxServer, SlackState]
) -> None:
    state = slack[1]
    now = MONDAY + timedelta(minutes=1)

    async def twice() -> None:
        chat = Connections(app.config, app.connections.connectors)
        try:
            reminders = replica(app, app.engine, chat, "replica-a", now)
            state.revoked.add(BOT_TOKEN)  # Slack refuses the token: token_revoked
            await reminders.send_due()
            assert reminders.sent == 0
            with session_scope(app.engine) as session:
                assert list(session.exec(select(ReminderRow))) == []
            state.revoked.clear()
            await reminders.send_due()
            assert reminders.sent == 2 and len(bot_messages(state)) == 2
        finally:
            await chat.aclose()

    asyncio.run(twice())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tick_is_not_sent_late(app: App, slack: tuple[SandboxServer, SlackState]) -> None:
    wednesday = MONDAY + timedelta(days=2)
    reminders = replica(app, app.engine, app.connections, "replica-a", wednesday)
    assert asyncio.run(reminders.send_due()) == MONDAY + timedelta(days=7)
    assert reminders.sent == 0 and bot_messages(slack[1]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_daemon_sends_them_at_its_pass(
    tmp_path: Path, database_url: str, slack: tuple[SandboxServer, SlackState]
) -> None:
    text = CONFIG.replace("BOT", BOT_TOKEN).replace("SLACK", f"{slack[0].url}/api/")
    settings = Settings(
        config=write_config(tmp_path, text=text),
        database_url=SecretStr(database_url),
        secrets_dir=tmp_path,
    )
    now = MONDAY + timedelta(minutes=1)

    async def run() -> int:
        app = App.open(settings, clock=lambda: now)
        app.apply_definitions()
        daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            for _ in range(500):  # until both messages are out (or 10 s)
                if daemon.reminders.sent >= 2:
                    break
                await asyncio.sleep(0.02)
            return daemon.reminders.sent
        finally:
            stop.set()
            await stop_within(task, 10)
            await app.aclose()

    assert asyncio.run(run()) == 2  # alice's partners (never checked in) and bob's uptime
    assert len(bot_messages(slack[1])) == 2
