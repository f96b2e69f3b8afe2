"""`okrsync plan` as a review gate: a metric's edited SQL is a change with its diff, and
`--detailed-exitcode` answers 0 (nothing to do), 1 (a query failed) or 2 (changes)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from okrsync.cli import app

QUERY = "SELECT SUM(amount) FROM deals WHERE won = 1"
CONFIG = """\
version: 1
connections:
  warehouse: {{type: sql, url: "sqlite:///{warehouse}"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won:
    connection: warehouse
    query: |
      {query}
    schedule: every 15m
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: bookings, title: Bookings, metric: won, kind: increase, start: 0, target: 1000}}
"""


class Cli:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.warehouse = tmp_path / "warehouse.db"
        with sqlite3.connect(self.warehouse) as db:
            db.execute("CREATE TABLE deals (amount NUMERIC, won INTEGER)")
            db.executemany("INSERT INTO deals VALUES (?, ?)", [(250, 1), (125, 1), (999, 0)])
        self.config = tmp_path / "okrsync.yaml"
        self.write(QUERY)
        self.env = {
            "OKRSYNC_CONFIG": str(self.config),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_LOG_FORMAT": "json",
            "COLUMNS": "300",  # one line per message, as in a log
        }

    def write(self, query: str) -> None:
        self.config.write_text(CONFIG.format(warehouse=self.warehouse, query=query))

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_plan_exit_codes_and_the_sql_diff(cli: Cli) -> None:
    assert cli("plan", "--detailed-exitcode").exit_code == 2  # an empty store: all to add
    synced = cli("sync")
    assert synced.exit_code == 0, synced.output
    nothing = cli("plan", "--detailed-exitcode")
    assert nothing.exit_code == 0, nothing.output
    assert "0 to add, 0 to change" in nothing.output

    cli.write(QUERY + " AND amount > 200")
    edited = cli("plan", "--detailed-exitcode", "--no-fetch")
    assert edited.exit_code == 2, edited.output
    assert "~ metrics:won" in edited.output
    assert f"- {QUERY}\n" in edited.output
    assert f"+ {QUERY} AND amount > 200\n" in edited.output
    planned = json.loads(cli("plan", "--json").output)
    assert planned["definitions"]["changed"] == ["metrics:won"]
    assert planned["definitions"]["diffs"]["metrics:won"] == [
        "query:",
        f"- {QUERY}",
        f"+ {QUERY} AND amount > 200",
    ]
    assert cli("plan").exit_code == 0  # changes, but no --detailed-exitcode: a success
    assert cli("sync").exit_code == 0  # applied: nothing left to change
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_failed_query_exits_1_in_the_databases_words(cli: Cli) -> None:
    cli.write("SELECT SUM(amount) FROM deal")
    for flags in ((), ("--detailed-exitcode",)):
        failed = cli("plan", *flags)
        assert failed.exit_code == 1, failed.output
        assert "no such table: deal" in failed.output
        assert "sqlalchemy" not in failed.output.lower()
    cli.write("SELECT SUM(amount) FROM deals WHERE :cycle_ned > 0")
    misnamed = cli("plan", "--detailed-exitcode")
    assert misnamed.exit_code == 1
    assert "unknown placeholder :cycle_ned" in misnamed.output
    assert "metric 'won'" in misnamed.output
    assert "bind parameter" not in misnamed.output


def test_an_edited_mirror_target_shows_what_it_replaces(cli: Cli, database_url: str) -> None:
    from datetime import UTC, datetime

    from okrsync.config import load_config_text
    from okrsync.plugins import load_registry
    from okrsync.store.db import make_engine, session_scope, upgrade
    from okrsync.store.definitions import sync_definitions

    def with_mirror(path: str) -> str:
        text = CONFIG.format(warehouse=cli.warehouse, query=QUERY).replace(
            "connections:\n", 'connections:\n  hook: {type: webhook, url: "http://127.0.0.1:9"}\n'
        )
        return text.replace(
            "target: 1000}",
            f"target: 1000, mirrors: [{{connection: hook, path: {path}}}]}}",
        )

    applied = with_mirror("/okr")
    engine = make_engine(database_url)
    upgrade(engine, "head")
    with session_scope(engine) as session:
        config = load_config_text(applied, load_registry().connectors)
        sync_definitions(session, config, datetime.now(UTC))
    engine.dispose()
    cli.config.write_text(applied)
    assert cli("plan", "--no-fetch", "--detailed-exitcode").exit_code == 0

    cli.config.write_text(with_mirror("/okrs"))
    planned = cli("plan", "--no-fetch", "--detailed-exitcode", "--json")
    assert planned.exit_code == 2
    definitions = json.loads(planned.output)["definitions"]
    (added,) = definitions["added"]
    (archived,) = definitions["archived"]
    assert added.startswith("mirrors:bookings/hook/") and archived.startswith("mirrors:")
    assert definitions["diffs"][added] == [
        f"replaces {archived}",
        "target.path:",
        "- /okr",
        "+ /okrs",
    ]


def test_with_detailed_exitcode_a_config_error_exits_1_not_2(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace("kind: increase", "kind: upwards"))
    assert cli("plan", "--no-fetch").exit_code == 2  # a config error, as everywhere
    broken = cli("plan", "--no-fetch", "--detailed-exitcode")
    assert broken.exit_code == 1  # 2 would read as "changes" to a pipeline
    assert "kind" in broken.output
    bad_setting = {**cli.env, "OKRSYNC_LOG_FORMAT": "xml"}
    done = CliRunner().invoke(app, ["plan", "--detailed-exitcode"], env=bad_setting)
    assert done.exit_code == 1 and "OKRSYNC_LOG_FORMAT" in done.output
