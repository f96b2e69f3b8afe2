"""The Slack sink driven by the real engine: SQL source → store → outbox → Slack fake.

Shows that what the core stores as the delivery reference brings the next change back to the
same message, for a key result mirror and an objective digest mirror alike.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.slack import SlackMirror, connector
from connectors.slack.fake import BOT_TOKEN
from connectors.slack.tests.conftest import FastSlackSink, Slack
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import Registry, load_registry
from okrsync.sdk.connector import Connector
from okrsync.settings import Settings

CONFIG = """
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
    mirrors: [{connection: team_chat, channel: C0OKRS0001}]
    key_results:
      - id: bookings
        title: Close $1000 in new bookings
        metric: won
        kind: increase
        start: 0
        target: 1000
        unit: USD
        mirrors: [{connection: team_chat, channel: "#okrs"}]
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE deals (amount NUMERIC)")
        db.execute("INSERT INTO deals VALUES (250)")
    return path


def noon() -> datetime:
    return datetime(2026, 11, 20, 12, tzinfo=UTC)


async def sync(text: str, registry: Registry, store: str) -> None:
    settings = Settings(database_url=SecretStr(store))
    config = load_config_text(text, registry.connectors)
    app = App.open(settings, config=config, registry=registry, clock=noon)
    try:
        app.apply_definitions()
        await app.sync.run_once()
    finally:
        await app.aclose()


async def test_engine_keeps_one_message_per_mirror(
    slack: Slack, warehouse: Path, tmp_path: Path
) -> None:
    real = load_registry()
    connectors = {
        "sql": real.connectors["sql"],
        "slack": Connector(
            type="slack",
            summary=connector.summary,
            connection_model=connector.connection_model,
            implementation=FastSlackSink,
        ),
    }
    registry = Registry(connectors)
    text = (
        CONFIG.replace("WAREHOUSE", str(warehouse))
        .replace("TOKEN", BOT_TOKEN)
        .replace("API", slack.api)
    )
    store = f"sqlite:///{tmp_path / 'okrsync.db'}"
    await sync(text, registry, store)
    for amount in (300, 200):
        with sqlite3.connect(warehouse) as db:
            db.execute("INSERT INTO deals VALUES (?)", (amount,))
        await sync(text, registry, store)

    bot = [m for m in slack.state.channel_messages("C0OKRS0001") if m.bot_id]
    assert len(bot) == 2
    assert slack.state.posts_for("key_result", "bookings") == 1
    assert slack.state.posts_for("objective", "revenue") == 1
    kr = next(m for m in bot if m.metadata and m.metadata["event_payload"]["kind"] == "key_result")
    assert kr.text.startswith("Close $1000 in new bookings: 75% (750 / 1,000 USD)")
    assert kr.updates == 2
    assert SlackMirror(channel="#okrs").channel_id is None  # resolved by Slack's answer
