"""A key result's ``decimals:`` reaches what people read from the store: the dashboard over a real
socket and ``okrsync status``, on SQLite and PostgreSQL; without it the unit's default applies."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from typer.testing import CliRunner

from okrsync import cli
from okrsync.api.dashboard import dashboard_routes
from okrsync.app import App
from okrsync.config import Config, load_config_text
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import make_engine, session_scope
from okrsync.store.definitions import sync_definitions
from okrsync.store.tables import KeyResultRow

NOW = datetime(2026, 10, 20, 9, tzinfo=UTC)

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  amount: {connection: warehouse, query: "SELECT 1234.5"}
  uptime: {connection: warehouse, query: "SELECT 99.85"}
objectives:
  - id: revenue
    title: Grow revenue
    cycle: 2026-Q4
    key_results:
      - {id: booked, title: Book revenue, metric: amount, kind: increase,
         start: 0, target: 5000, unit: USD, decimals: 2}
      - {id: uptime, title: Keep checkout available, metric: uptime, kind: stay_above,
         target: 99.9, unit: "%"}
"""


def config_for(tmp_path: Path, text: str = CONFIG) -> Config:
    warehouse = tmp_path / "warehouse.db"
    sqlite3.connect(warehouse).close()
    return load_config_text(text.replace("WAREHOUSE", str(warehouse)), load_registry().connectors)


async def synced(database_url: str, tmp_path: Path) -> None:
    """The store as production fills it: definitions applied, one sync pass."""
    settings = Settings(database_url=SecretStr(database_url))
    app = App.open(settings, config=config_for(tmp_path), clock=lambda: NOW)
    try:
        app.apply_definitions()
        await app.sync.run_once()
    finally:
        await app.aclose()


async def test_the_dashboard_and_status_show_the_key_results_decimals(
    database_url: str, tmp_path: Path
) -> None:
    await synced(database_url, tmp_path)
    routes = dashboard_routes(make_engine(database_url), lambda: NOW)
    with SandboxServer(Starlette(routes=routes), name="dashboard") as server:
        async with httpx.AsyncClient() as client:
            page = await client.get(server.url + "/objectives/revenue")
    assert page.status_code == 200
    # decimals: 2 on a currency (its unit's default is 0): value and target with two places
    assert "<strong>1,234.50 USD</strong>" in page.text
    assert "/ 5,000.00 USD" in page.text
    # no decimals: the unit's default, 1 for %, half-up
    assert "<strong>99.9%</strong>" in page.text
    assert "target ≥ 99.9%" in page.text

    shown = CliRunner().invoke(
        cli.app, ["status"], env={"OKRSYNC_DATABASE_URL": database_url, "COLUMNS": "160"}
    )
    assert shown.exit_code == 0, shown.output
    assert "1,234.50 USD" in shown.output and "5,000.00" in shown.output
    assert "1,235 USD" not in shown.output
    assert "99.9 %" in shown.output  # the unit's default without decimals


async def test_a_changed_decimals_is_a_definition_change(database_url: str, tmp_path: Path) -> None:
    await synced(database_url, tmp_path)
    edited = config_for(tmp_path, CONFIG.replace("decimals: 2", "decimals: 3"))
    with session_scope(make_engine(database_url)) as session:
        planned = sync_definitions(session, edited, NOW, dry_run=True)
        assert planned.changed == ["key_results:booked"]
        assert planned.diffs["key_results:booked"] == ["decimals:", "- 2", "+ 3"]  # `plan` shows it
        sync_definitions(session, edited, NOW)
    with session_scope(make_engine(database_url)) as session:
        booked, uptime = session.get(KeyResultRow, "booked"), session.get(KeyResultRow, "uptime")
        assert booked is not None and booked.decimals == 3
        assert (
            uptime is not None and uptime.decimals is None
        )  # the configured value, not the unit's
