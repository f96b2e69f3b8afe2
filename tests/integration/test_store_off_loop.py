"""The daemon never waits on the store on its event loop: every store call its scheduler,
dispatcher, stale watch and scheduled pushes make from async code runs in a worker thread
(:mod:`okrsync.store.offload`), so ``/healthz``, webhooks and the API answer while a pass records.

The whole daemon runs in-process with its HTTP server (SQLite and PostgreSQL): a first pass
records and delivers; then the clock moves two hours and a signed webhook wakes it, so one pass
claims due metrics, queues a scheduled push, announces a stale value and delivers all of it. A
listener on the engine notes the thread of every SQL statement and the okrsync function that
made it: the mechanism is judged exactly (which thread), never by how long anything took.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event
from sqlmodel import select

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.server import HttpServer, bind
from okrsync.app import App
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow
from tests.integration import test_sync_service
from tests.integration.test_stale_announcements import break_source
from tests.integration.test_sync_service import NotesSink, World

world = test_sync_service.world  # the fixture: a store, a SQL source, a webhook receiver, notes

SECRET = "hook-secret-0123456789"
PACKAGE = str(Path(__import__("okrsync").__path__[0]))
STORE_SESSIONS = str(Path(PACKAGE) / "store" / "db.py")

# Nothing okrsync does from async code may run SQL on the loop's thread.
KNOWN_ON_LOOP: set[str] = set()


def caller() -> str:
    """The innermost okrsync function (outside the session helper) making this statement."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename.startswith(PACKAGE) and frame.filename != STORE_SESSIONS:
            return f"okrsync{frame.filename[len(PACKAGE) :]}:{frame.name}"
    return "outside okrsync"


@dataclass
class Threads:
    """Which okrsync functions ran SQL on the event loop's thread, and which in workers."""

    loop: int
    on_loop: set[str] = field(default_factory=set)
    off_loop: set[str] = field(default_factory=set)

    def statement(self, *_args: Any) -> None:
        where = self.on_loop if threading.get_ident() == self.loop else self.off_loop
        where.add(caller())


def text(world: World) -> str:
    """Hourly metrics; the deals value goes stale after an hour (announced to the webhook);
    the notes mirror also pushes on its own hourly schedule."""
    return (
        world.text.replace(
            "mirrors: [{connection: hook}, {connection: notes}]",
            "stale_after: 1h\n        mirrors: [{connection: hook}, "
            "{connection: notes, schedule: every 1h}]",
        )
        .replace(
            '"SELECT COUNT(*) FROM deals"}', '"SELECT COUNT(*) FROM deals", schedule: every 1h}'
        )
        .replace('"SELECT 1"}', '"SELECT 1", schedule: every 1h}')
    )


def signed(body: bytes) -> dict[str, str]:
    """okrsync's own scheme: HMAC-SHA256 of ``"<timestamp>." + body`` (see the README)."""
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Okrsync-Timestamp": stamp,
        "X-Okrsync-Signature": "sha256=" + digest,
        "Content-Type": "application/json",
    }


def settled(app: App) -> bool:
    """No delivery pending (read from a thread: the test's own reads stay off the loop too)."""
    with session_scope(app.engine) as session:
        pending = session.exec(select(DeliveryRow.id).where(DeliveryRow.status == "pending"))
        return pending.first() is None


async def until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll a condition the daemon makes true (the limit only ends a hung run)."""
    for _ in range(int(limit / 0.05)):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_no_store_call_of_the_daemon_runs_on_the_event_loop(
    world: World, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "OKRSYNC_HOOK_SECRET_GOOD").write_text(SECRET + "\n")
    settings = Settings(
        database_url=SecretStr(world.database_url),
        secrets_dir=secrets,
        hook_debounce_seconds=0.05,
    )
    app = App.open(
        settings, config=world.config(text(world)), registry=world.registry, clock=world.clock
    )
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=world.clock)
    http = HttpServer(build_app(ApiContext.from_app(app, daemon)), bind("127.0.0.1", 0))
    threads = Threads(threading.get_ident())
    event.listen(app.engine, "before_cursor_execute", threads.statement)
    stop = asyncio.Event()
    scheduler = asyncio.create_task(daemon.run(stop))
    await http.start()
    receiver = world.receiver
    try:
        host, port = http.address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            await until(lambda: len(receiver.received) >= 1, "the first pass delivers the value")
            assert receiver.received[0].body["stale"] is False
            await until(lambda: settled(app), "the first deliveries are settled")
            notes_before = len(NotesSink.calls)
            break_source(world)  # the runs to come cannot confirm the value
            world.clock.now += timedelta(hours=2)  # the value goes stale; the hour has ticked
            body = b'{"event": "deal.created"}'
            hooked = await client.post("/hooks/good", content=body, headers=signed(body))
            assert hooked.status_code == 202, hooked.text
            await until(
                lambda: any(d.body["stale"] for d in receiver.received),
                "the stale value is announced",
            )
            await until(lambda: len(NotesSink.calls) > notes_before, "the scheduled push")
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await http.stop()
        stop.set()
        assert await stop_within(scheduler, 30)
        event.remove(app.engine, "before_cursor_execute", threads.statement)
        await app.aclose()
    assert threads.on_loop <= KNOWN_ON_LOOP, sorted(threads.on_loop - KNOWN_ON_LOOP)
    made_in_workers = {name.split(":")[0] for name in threads.off_loop}
    for part in (
        "okrsync/engine/daemon.py",  # the due metrics' last runs
        "okrsync/engine/metric_claims.py",  # the claim
        "okrsync/engine/dispatcher.py",  # claims, checks, settles, next due
        "okrsync/engine/staleness.py",  # the stale watch
        "okrsync/engine/scheduled_pushes.py",
        "okrsync/api/health.py",  # /readyz
    ):
        assert part in made_in_workers, sorted(threads.off_loop)
