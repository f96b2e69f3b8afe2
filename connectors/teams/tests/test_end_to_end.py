"""The Teams sink driven by the real engine, with the pacing a channel of new posts needs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from connectors.teams import connector
from connectors.teams.fake import teams_app, workflow_url
from connectors.teams.tests.conftest import FastTeamsSink
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import Registry, load_registry
from okrsync.sandbox import SandboxServer
from okrsync.sdk.connector import Connector
from okrsync.settings import Settings

CONFIG = """
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  sales_channel: {type: teams, webhook_url: "URL"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won: {connection: warehouse, query: "SELECT COALESCE(SUM(amount), 0) FROM deals"}
objectives:
  - id: revenue
    title: Grow new-business revenue
    cycle: 2026-Q4
    mirrors: [{connection: sales_channel}]
    key_results:
      - id: bookings
        title: Close $1000 in new bookings
        metric: won
        kind: increase
        start: 0
        target: 1000
        unit: USD
        mirrors: [{connection: sales_channel, min_change: 0.05}]
"""


def noon() -> datetime:
    return datetime(2026, 11, 20, 12, tzinfo=UTC)


async def test_material_changes_only(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (amount NUMERIC)")
        db.execute("INSERT INTO deals VALUES (250)")
    real = load_registry()
    registry = Registry(
        {
            "sql": real.connectors["sql"],
            "teams": Connector(
                type="teams",
                summary=connector.summary,
                connection_model=connector.connection_model,
                implementation=FastTeamsSink,
            ),
        }
    )
    app_under_test = teams_app()
    with SandboxServer(app_under_test, name="teams") as server:
        text = CONFIG.replace("WAREHOUSE", str(warehouse)).replace("URL", workflow_url(server.url))
        store = f"sqlite:///{tmp_path / 'okrsync.db'}"
        for amount in (None, 10, 300):  # 25%, then +1 point (not material), then +30 points
            if amount is not None:
                with sqlite3.connect(warehouse) as db:
                    db.execute("INSERT INTO deals VALUES (?)", (amount,))
            settings = Settings(database_url=SecretStr(store))
            config = load_config_text(text, registry.connectors)
            app = App.open(settings, config=config, registry=registry, clock=noon)
            try:
                app.apply_definitions()
                await app.sync.run_once()
            finally:
                await app.aclose()
    state = app_under_test.state.teams
    assert state.posts_for("key_result", "bookings") == 2  # the 1-point move was not posted
    assert state.posts_for("objective", "revenue") == 3  # the digest has no threshold
    kr_cards = [p.card for p in state.posts if "okrsync-key_result-bookings" in p.subjects]
    bars = [card["attachments"][0]["content"]["body"][0]["items"][2]["text"] for card in kr_cards]
    assert bars == ["▓▓▓░░░░░░░ 25%", "▓▓▓▓▓▓░░░░ 56%"]
