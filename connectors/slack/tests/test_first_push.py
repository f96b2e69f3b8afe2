"""A new mirror's first push is one ``chat.postMessage``; a push that may have posted before looks
first, so a lost answer or a crash never leaves two messages.

The real engine (SQL source → store → outbox → dispatcher) drives the Slack sink against the Slack
fake on loopback sockets. Lost answers come from a proxy in front of the fake that lets Slack post
the message and then answers 502 (or never answers, for a daemon killed mid-request).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from connectors.slack import connector
from connectors.slack.fake import BOT_TOKEN, SlackState, slack_app
from connectors.slack.tests.conftest import FastSlackSink, Slack
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import Registry, load_registry
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.connector import Connector
from okrsync.settings import Settings
from okrsync.store.db import make_engine, session_scope
from okrsync.store.tables import DeliveryRow

CHANNELS = ("C0OKRS0001", "C0SALES001", "G0LEADS001")
HEAD = """
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  team_chat: {type: slack, token: "TOKEN", base_url: "API"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won: {connection: warehouse, query: "SELECT COALESCE(SUM(amount), 0) FROM deals"}
objectives:
  - id: revenue
    title: Grow new-business revenue
    cycle: 2026-Q4
    key_results:
"""
KEY_RESULT = """      - id: KR
        title: Key result KR
        metric: won
        kind: increase
        start: 0
        target: 1000
        mirrors: [{connection: team_chat, channel: CHANNEL}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    warehouse: Path
    store: str
    clock: Clock
    registry: Registry

    def config(self, api: str, key_results: int) -> str:
        body = "".join(
            KEY_RESULT.replace("KR", f"kr{i:02d}").replace("CHANNEL", CHANNELS[i % len(CHANNELS)])
            for i in range(key_results)
        )
        return (
            (HEAD + body)
            .replace("WAREHOUSE", str(self.warehouse))
            .replace("TOKEN", BOT_TOKEN)
            .replace("API", api)
        )

    def app(self, api: str, key_results: int = 1) -> App:
        settings = Settings(database_url=SecretStr(self.store))
        config = load_config_text(self.config(api, key_results), self.registry.connectors)
        app = App.open(settings, config=config, registry=self.registry, clock=self.clock)
        app.apply_definitions()
        return app

    def add_deal(self, amount: int) -> None:
        with sqlite3.connect(self.warehouse) as db:
            db.execute("INSERT INTO deals VALUES (?)", (amount,))

    def deliveries(self) -> list[DeliveryRow]:
        engine = make_engine(self.store)
        try:
            with session_scope(engine) as session:
                return list(session.exec(select(DeliveryRow).order_by(col(DeliveryRow.id))))
        finally:
            engine.dispose()


@pytest.fixture
def world(tmp_path: Path) -> World:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (amount NUMERIC)")
        db.execute("INSERT INTO deals VALUES (250)")
    real = load_registry()
    registry = Registry(
        {
            "sql": real.connectors["sql"],
            "slack": Connector(
                type="slack",
                summary=connector.summary,
                connection_model=connector.connection_model,
                implementation=FastSlackSink,
            ),
        }
    )
    return World(warehouse, f"sqlite:///{tmp_path / 'okrsync.db'}", Clock(), registry)


def methods(server: SandboxServer, since: int = 0) -> Counter[str]:
    return Counter(r.path.removeprefix("/api/") for r in server.requests[since:])


def bot_messages(state: SlackState, kr: str) -> list[Any]:
    return [
        m
        for channel in CHANNELS
        for m in state.channel_messages(channel)
        if m.bot_id and (m.metadata or {}).get("event_payload", {}).get("id") == kr
    ]


async def test_new_mirrors_cost_one_post_each_and_no_history_read(
    slack: Slack, world: World
) -> None:
    count = 12  # four per channel: within a channel's burst, so nothing waits on the pace
    app = world.app(slack.api, count)
    try:
        first = await app.sync.run_once()
        assert first.dispatch is not None and first.dispatch.delivered == count
        assert methods(slack.server) == {"chat.postMessage": count}  # not one history read
        world.add_deal(250)
        seen = len(slack.server.requests)
        second = await app.sync.run_once()
        assert second.dispatch is not None and second.dispatch.delivered == count
    finally:
        await app.aclose()
    assert methods(slack.server, seen) == {"chat.update": count}
    for i in range(count):
        (message,) = bot_messages(slack.state, f"kr{i:02d}")
        assert "50%" in message.text and message.updates == 1
        assert slack.state.posts_for("key_result", f"kr{i:02d}") == 1


class LosePostAnswers:
    """In front of the Slack fake: lets the first ``chat.postMessage`` through to Slack, then
    answers 502 as a proxy that lost Slack's answer would, or, with ``hang``, never answers (the
    daemon is killed before it reads one)."""

    def __init__(self, app: Any, *, hang: bool = False) -> None:
        self.app = app
        self.hang = hang
        self.lost = 0
        self.posted = threading.Event()  # Slack has posted the message whose answer is lost

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.lost == 0 and scope["type"] == "http" and scope["path"] == "/api/chat.postMessage":
            self.lost += 1

            async def swallow(message: Any) -> None:
                return None

            await self.app(scope, receive, swallow)
            self.posted.set()
            if self.hang:
                await asyncio.sleep(3600)  # cut short when the server stops
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"Bad Gateway"})
            return
        await self.app(scope, receive, send)


@dataclass
class Lossy:
    server: SandboxServer
    state: SlackState
    proxy: LosePostAnswers

    @property
    def api(self) -> str:
        return f"{self.server.url}/api/"


def lossy_slack(*, hang: bool = False) -> Iterator[Lossy]:
    app = slack_app()
    proxy = LosePostAnswers(app, hang=hang)
    with SandboxServer(proxy, name="slack-lossy") as server:
        yield Lossy(server, app.state.slack, proxy)


@pytest.fixture
def lossy() -> Iterator[Lossy]:
    yield from lossy_slack()


@pytest.fixture
def hanging() -> Iterator[Lossy]:
    yield from lossy_slack(hang=True)


async def test_post_whose_answer_was_lost_is_found_not_repeated(lossy: Lossy, world: World) -> None:
    app = world.app(lossy.api)
    try:
        report = await app.sync.run_once()
        assert report.dispatch is not None and report.dispatch.delivered == 1
        world.add_deal(250)
        await app.sync.run_once()
    finally:
        await app.aclose()
    assert lossy.proxy.lost == 1
    (message,) = bot_messages(lossy.state, "kr00")
    assert lossy.state.posts_for("key_result", "kr00") == 1
    assert "50%" in message.text and message.updates == 1  # the next change edited it
    paths = [r.path.removeprefix("/api/") for r in lossy.server.requests]
    assert paths == ["chat.postMessage", "conversations.history", "chat.update"]
    first, second = world.deliveries()
    assert first.status == second.status == "done"
    assert first.external_ref == second.external_ref == f"{CHANNELS[0]}:{message.ts}"


async def test_failed_push_is_retried_by_looking_first(lossy: Lossy, world: World) -> None:
    # the post is made, its answer lost, and the search that follows fails too
    lossy.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=502, path="conversations.history", times=-1)
    )
    app = world.app(lossy.api)
    try:
        report = await app.sync.run_once()
        assert report.dispatch is not None and report.dispatch.failed == 1
        (failed,) = world.deliveries()
        assert failed.status == "pending" and failed.attempts == 1
        lossy.server.faults.clear()
        # past the delivery's backoff and the mirror's settle time (a post whose answer was
        # lost may still land at Slack; the search waits for it)
        world.clock.now += app.dispatcher.settle + timedelta(seconds=1)
        retried = await app.dispatcher.dispatch_due()
    finally:
        await app.aclose()
    assert retried.delivered == 1
    (message,) = bot_messages(lossy.state, "kr00")
    assert lossy.state.posts_for("key_result", "kr00") == 1
    (done,) = world.deliveries()
    assert done.status == "done" and done.attempts == 2
    assert done.external_ref == f"{CHANNELS[0]}:{message.ts}"
    paths = [r.path.removeprefix("/api/") for r in lossy.server.requests]
    assert paths[0] == "chat.postMessage" and paths.count("chat.postMessage") == 1
    assert paths[-2:] == ["conversations.history", "chat.update"]


@pytest.mark.parametrize("changed_meanwhile", [False, True])
async def test_push_cut_short_by_a_crash_is_found_after_restart(
    hanging: Lossy, world: World, changed_meanwhile: bool
) -> None:
    app = world.app(hanging.api)
    run = asyncio.create_task(app.sync.run_once())
    try:
        assert await asyncio.to_thread(hanging.proxy.posted.wait, 10)
        run.cancel()  # the daemon dies: Slack posted, the reference was never stored
        with pytest.raises(asyncio.CancelledError):
            await run
    finally:
        await app.aclose()
    (claimed,) = world.deliveries()
    assert claimed.status == "pending" and claimed.attempts == 1  # the claim was committed

    world.clock.now += timedelta(minutes=3)  # the dead daemon's lease has expired
    restarted = world.app(hanging.api)
    try:
        if changed_meanwhile:  # a newer delivery supersedes the one the crash cut short
            world.add_deal(250)
            run_report = await restarted.sync.run_once()
            assert run_report.dispatch is not None
            report = run_report.dispatch
        else:
            report = await restarted.dispatcher.dispatch_due()
    finally:
        await restarted.aclose()
    assert report.delivered == 1
    (message,) = bot_messages(hanging.state, "kr00")
    assert hanging.state.posts_for("key_result", "kr00") == 1
    assert ("50%" in message.text) is changed_meanwhile
    paths = [r.path.removeprefix("/api/") for r in hanging.server.requests]
    assert paths == ["chat.postMessage", "conversations.history", "chat.update"]
    *superseded, done = world.deliveries()
    assert [row.status for row in superseded] == ["superseded"] * changed_meanwhile
    assert done.status == "done" and done.external_ref == f"{CHANNELS[0]}:{message.ts}"
