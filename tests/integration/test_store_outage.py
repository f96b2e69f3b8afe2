"""The store goes away mid-run (PostgreSQL behind a proxy we cut): the daemon keeps running,
retries, and catches up when the store is back; nothing recorded before is lost."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon
from okrsync.plugins import load_registry
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow, MeasurementRow

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals", schedule: every 1s}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {id: deals, title: Deals, metric: deals, kind: increase, start: 0, target: 10}
"""


class Proxy:
    """A TCP proxy to PostgreSQL that can be cut (listener closed, connections reset).

    It runs its own event loop in a thread: the store's driver blocks the daemon's loop.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self.loop).result(10)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.pipes):
            writer.transport.abort()
        self.pipes.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.pipes.update({writer, upstream_writer})

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))


async def wait_for(check: object, seconds: float) -> None:
    assert callable(check)
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_the_daemon_rides_out_a_store_outage(tmp_path: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("an embedded SQLite store cannot go away")
    parts = urlsplit(database_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    via_proxy = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO deals DEFAULT VALUES")
    registry = load_registry()
    config = load_config_text(CONFIG.replace("WAREHOUSE", str(warehouse)), registry.connectors)
    app = App.open(Settings(database_url=SecretStr(via_proxy)), config=config, registry=registry)
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(ApiContext.from_app(app, daemon))),
        base_url="http://okrsync",
    )

    async def ready() -> int:
        return (await http.get("/readyz")).status_code

    def value() -> object:
        with session_scope(app.engine) as session:
            row = session.get(KeyResultRow, "deals")
            return None if row is None else row.value

    try:
        await wait_for(lambda: value() == 1, 20)
        assert await ready() == 200
        proxy.cut()  # the store goes away
        with sqlite3.connect(warehouse) as db:
            db.execute("INSERT INTO deals DEFAULT VALUES")
        await asyncio.sleep(3)
        assert not task.done(), "the daemon died with the store"
        assert await ready() == 503  # /readyz tells the truth meanwhile
        assert (await http.get("/healthz")).status_code == 200  # the process itself is fine
        proxy.start()  # back, on the same port
        await wait_for(lambda: value() == 2, 40)
        assert not task.done()
        assert await ready() == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        with session_scope(app.engine) as session:
            values = [m.value for m in session.exec(select(MeasurementRow))]
        await http.aclose()
        await app.aclose()
        proxy.close()
    assert sorted(v for v in values if v is not None) == [1, 2]  # nothing lost, nothing doubled
