"""The definitions ``plan`` compares with live in tables of their own (migration 0013): applying
writes no ``runs`` row and only the rows of what changed, the migration moves the record the
``runs`` table used to hold, and a connection's edit shows in ``plan`` without its secrets."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from okrsync.cli import app
from okrsync.config import load_config_text
from okrsync.plugins import load_registry
from okrsync.store.db import alembic_config, make_engine, upgrade
from okrsync.store.definitions import sync_definitions
from okrsync.store.tables import ConnectionDefinitionRow, MetricDefinitionRow, RunRow

SECRET = "s3cret-signing-key-4711"
OTHER_SECRET = "an0ther-signing-key-0815"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CONFIG = """\
version: 1
connections:
  warehouse: {{type: sql, url: "sqlite:///{warehouse}"}}
  hook: {{type: webhook, url: "{hook_url}", secret: "${{HOOK_SECRET}}"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won: {{connection: warehouse, query: "SELECT SUM(amount) FROM deals", schedule: every 15m}}
  lost: {{connection: warehouse, query: "{lost}", schedule: every 15m}}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: bookings, title: Bookings, metric: won, kind: increase, start: 0, target: 1000}}
      - {{id: losses, title: Losses, metric: lost, kind: decrease, start: 100, target: 0}}
"""
LOST = "SELECT COUNT(*) FROM deals WHERE won = 0"


def config_text(
    warehouse: Path, *, hook_url: str = "http://127.0.0.1:9/okr", lost: str = LOST
) -> str:
    return CONFIG.format(warehouse=warehouse, hook_url=hook_url, lost=lost)


def test_applying_writes_no_run_and_only_the_changed_rows(
    tmp_path: Path, database_url: str
) -> None:
    connectors = load_registry().connectors
    engine = make_engine(database_url)
    upgrade(engine, "head")
    env = {"HOOK_SECRET": SECRET}
    first = load_config_text(config_text(tmp_path / "w.db"), connectors, environ=env)
    edited = load_config_text(
        config_text(tmp_path / "w.db", lost=LOST + " AND amount > 5"), connectors, environ=env
    )
    try:
        for now, config in ((T0, first), (T0 + timedelta(hours=1), first)):
            with Session(engine) as session:
                sync_definitions(session, config, now)
                session.commit()
        with Session(engine) as session:
            changes = sync_definitions(session, edited, T0 + timedelta(hours=2))
            session.commit()
            assert changes.changed == ["metrics:lost"]
            assert session.exec(select(RunRow)).all() == []  # no record among the runs
            applied = {r.name: r.applied_at for r in session.exec(select(MetricDefinitionRow))}
            # the unchanged metric's row was not rewritten, by the second pass nor the edit
            assert applied == {"won": T0, "lost": T0 + timedelta(hours=2)}
            assert session.get(MetricDefinitionRow, "lost").query.endswith("amount > 5")  # type: ignore[union-attr]
            stored = {r.name: r.fields for r in session.exec(select(ConnectionDefinitionRow))}
            assert stored["hook"]["url"] == "http://127.0.0.1:9/okr"
            assert "secret" not in stored["hook"] and "url" not in stored["warehouse"]
            assert SECRET not in json.dumps(stored)
        lines = config_text(tmp_path / "w.db").splitlines()
        kept = [line for line in lines if "lost" not in line and "losses" not in line]
        without_lost = load_config_text("\n".join(kept), connectors, environ=env)
        with Session(engine) as session:
            changes = sync_definitions(session, without_lost, T0 + timedelta(hours=3))
            session.commit()
            assert "metrics:lost" in changes.archived
            assert [r.name for r in session.exec(select(MetricDefinitionRow))] == ["won"]
    finally:
        engine.dispose()


def test_the_migration_moves_the_newest_record_out_of_runs(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0011")
    insert = text(
        "INSERT INTO runs (id, trigger, started_at, finished_at, queries, api_calls, changed,"
        " errors, status, detail) VALUES (:id, :trigger, :at, :at, 0, 0, 0, 0, 'ok', :detail)"
    )

    def record(query: str) -> str:
        won = {"connection": "warehouse", "query": query, "schedule": "every 15m"}
        return json.dumps({"metrics": {"won": won}})

    with engine.begin() as conn:
        at = datetime(2026, 11, 1, 8, 0)
        conn.execute(
            insert,
            {
                "id": "definitions-old",
                "trigger": "definitions",
                "at": at,
                "detail": record("SELECT 1"),
            },
        )
        conn.execute(
            insert,
            {
                "id": "definitions-new",
                "trigger": "definitions",
                "at": at + timedelta(hours=1),
                "detail": record("SELECT 2"),
            },
        )
        conn.execute(insert, {"id": "run-1", "trigger": "schedule", "at": at, "detail": "{}"})
    upgrade(engine, "head")
    try:
        with Session(engine) as session:
            assert [r.id for r in session.exec(select(RunRow))] == ["run-1"]
            (moved,) = session.exec(select(MetricDefinitionRow)).all()
            assert (moved.name, moved.connection, moved.query, moved.schedule) == (
                "won",
                "warehouse",
                "SELECT 2",
                "every 15m",
            )
            assert moved.applied_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        command.downgrade(alembic_config(engine), "0011")  # and back, as a runs row again
        with engine.connect() as conn:
            (detail,) = conn.execute(text("SELECT detail FROM runs WHERE trigger = 'definitions'"))
        back = detail[0] if isinstance(detail[0], dict) else json.loads(detail[0])
        assert back["metrics"]["won"]["query"] == "SELECT 2"
    finally:
        engine.dispose()


class Cli:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.warehouse = tmp_path / "warehouse.db"
        with sqlite3.connect(self.warehouse) as db:
            db.execute("CREATE TABLE deals (amount NUMERIC, won INTEGER)")
            db.executemany("INSERT INTO deals VALUES (?, ?)", [(250, 1), (125, 0)])
        self.config = tmp_path / "okrsync.yaml"
        self.config.write_text(config_text(self.warehouse))
        self.env = {
            "OKRSYNC_CONFIG": str(self.config),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_LOG_FORMAT": "json",
            "HOOK_SECRET": SECRET,
            "COLUMNS": "300",
        }

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_a_connection_edit_shows_in_plan_and_its_secret_never(cli: Cli) -> None:
    assert cli("sync").exit_code == 0
    assert cli("plan", "--no-fetch", "--detailed-exitcode").exit_code == 0

    moved = "https://hooks.example.com/okr?key=${HOOK_SECRET}"  # a secret inside a plain field
    cli.config.write_text(config_text(cli.warehouse, hook_url=moved))
    edited = cli("plan", "--no-fetch", "--detailed-exitcode")
    assert edited.exit_code == 2, edited.output
    assert "~ connections:hook" in edited.output
    assert "- http://127.0.0.1:9/okr\n" in edited.output
    assert "+ https://hooks.example.com/okr?key=***\n" in edited.output
    planned = json.loads(cli("plan", "--no-fetch", "--json").output)["definitions"]
    assert planned["changed"] == ["connections:hook"]
    assert planned["diffs"]["connections:hook"] == [
        "url:",
        "- http://127.0.0.1:9/okr",
        "+ https://hooks.example.com/okr?key=***",
    ]

    assert SECRET not in edited.output and SECRET not in json.dumps(planned)
    cli.env["HOOK_SECRET"] = OTHER_SECRET  # a changed secret cannot be seen: not stored
    for flags in ((), ("--json",)):
        shown = cli("plan", "--no-fetch", *flags)
        assert SECRET not in shown.output and OTHER_SECRET not in shown.output
    assert cli("sync").exit_code == 0
    assert cli("plan", "--no-fetch", "--detailed-exitcode").exit_code == 0


def test_with_a_digest_key_an_edited_secret_shows_as_changed_only(
    cli: Cli, database_url: str
) -> None:
    cli.env["OKRSYNC_SECRET_DIGEST_KEY"] = "plan-digest-key"
    assert cli("sync").exit_code == 0
    assert cli("plan", "--no-fetch", "--detailed-exitcode").exit_code == 0
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            kept = json.dumps([r.fields for r in session.exec(select(ConnectionDefinitionRow))])
    finally:
        engine.dispose()
    assert "hmac-sha256:" in kept and SECRET not in kept

    cli.env["HOOK_SECRET"] = OTHER_SECRET
    edited = cli("plan", "--no-fetch", "--detailed-exitcode")
    assert edited.exit_code == 2, edited.output
    assert "~ connections:hook" in edited.output and "secret: (secret changed)" in edited.output
    for hidden in (SECRET, OTHER_SECRET, "hmac-sha256"):
        assert hidden not in edited.output
    # without the key the digests are not compared: nothing to show, nothing changed
    del cli.env["OKRSYNC_SECRET_DIGEST_KEY"]
    assert cli("plan", "--no-fetch", "--detailed-exitcode").exit_code == 0
