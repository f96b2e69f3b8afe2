"""Shared by the API tests: a small config on a SQLite warehouse, and the API on a real socket."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.app import App
from okrsync.sandbox.server import SandboxServer
from okrsync.settings import Settings

TOKEN = "test-token-0123456789"
HOOK_SECRET = "hook-secret-abcdef"

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  receiver: {type: webhook, url: "http://127.0.0.1:9/okr"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals:
    connection: warehouse
    query: "SELECT COUNT(*) FROM deals"
    schedule: every 1h
objectives:
  - id: o
    title: Objective
    cycle: 2026-Q4
    key_results:
      - id: deals
        title: Ten deals
        metric: deals
        kind: increase
        start: 0
        target: 10
        mirrors: [{connection: receiver}]
"""


def write_config(
    tmp_path: Path, deals: int = 3, text: str = CONFIG, owner: str | None = None
) -> Path:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE IF NOT EXISTS deals (id INTEGER PRIMARY KEY)")
        for _ in range(deals):
            db.execute("INSERT INTO deals DEFAULT VALUES")
    config = tmp_path / "okrsync.yaml"
    text = text.replace("WAREHOUSE", str(warehouse))
    if owner is not None:
        text = text.replace("    title: Objective\n", f"    title: Objective\n    owner: {owner}\n")
    config.write_text(text)
    return config


def add_deal(config: Path) -> None:
    warehouse = config.parent / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("INSERT INTO deals DEFAULT VALUES")


@dataclass
class Service:
    app: App
    ctx: ApiContext
    server: SandboxServer

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def api_service(
    tmp_path: Path,
    database_url: str,
    *,
    token: str | None = TOKEN,
    debounce: float = 0.2,
    synced: bool = True,
    config: str = CONFIG,
    public_read: bool = True,
    owner: str | None = None,
    **more: Any,
) -> Iterator[Service]:
    """The API of a store that has run one sync, served on a loopback socket (no daemon);
    reads are public unless ``public_read=False``; ``more`` are further settings."""
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "OKRSYNC_HOOK_SECRET_WAREHOUSE").write_text(HOOK_SECRET + "\n")
    settings = Settings(
        config=write_config(tmp_path, text=config, owner=owner),
        database_url=SecretStr(database_url),
        secrets_dir=tmp_path / "secrets",
        api_token=SecretStr(token) if token else None,
        hook_debounce_seconds=debounce,
        public_read=public_read,  # these tests read without a token; sign-in has its own
        **more,
    )
    app = App.open(settings)
    app.apply_definitions()
    if synced:
        asyncio.run(app.sync.run_once(trigger="manual", dispatch=False))
    ctx = ApiContext.from_app(app)
    try:
        with SandboxServer(build_app(ctx), name="okrsync-api") as server:
            yield Service(app, ctx, server)
    finally:
        asyncio.run(app.aclose())
