"""The issue's own config, end to end through the CLI, on SQLite and on PostgreSQL.

A SQLite "warehouse" of a few deals, the webhook receiver fake on a loopback socket, and the
``okrsync`` commands run as a user would run them (a subprocess each).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.webhook.receiver import receiver_app
from okrsync.sandbox import SandboxServer

# The config verbatim (only the receiver's address is filled in at run time).
CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
  hook: {type: webhook, url: "HOOK_URL", secret: "${HOOK_SECRET:-}"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won:
    connection: warehouse
    query: "SELECT SUM(amount) FROM deals WHERE won = 1 AND closed_on >= :cycle_start"
    schedule: every 15m          # also a cron string, e.g. "*/10 * * * *"
objectives:
  - id: revenue
    title: Grow new-business revenue
    cycle: 2026-Q4
    owner: sales
    key_results:
      - id: bookings
        title: Close $1000 in new bookings
        metric: won              # or `value:` an expression over metrics
        kind: increase           # increase | decrease | stay_above | stay_below | stay_between | milestone
        start: 0
        target: 1000
        unit: USD
        mirrors:
          - {connection: hook}
"""


@pytest.fixture
def receiver() -> Iterator[SandboxServer]:
    with SandboxServer(receiver_app(), name="hook") as server:
        yield server


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE deals "
            "(id INTEGER PRIMARY KEY, amount NUMERIC, won INTEGER, closed_on DATE)"
        )
        db.executemany(
            "INSERT INTO deals (amount, won, closed_on) VALUES (?, ?, ?)",
            [
                (250, 1, "2026-10-03"),
                (125.5, 1, "2026-11-12"),
                (999, 0, "2026-11-13"),  # lost: not counted
                (400, 1, "2026-09-30"),  # before the cycle: not counted
            ],
        )
    return path


class Cli:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "okrsync", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path, database_url: str, warehouse: Path, receiver: SandboxServer) -> Cli:
    config = tmp_path / "okrsync.yaml"
    config.write_text(CONFIG.replace("HOOK_URL", f"{receiver.url}/okr"))
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_LOG_FORMAT": "json",
        "WAREHOUSE_URL": f"sqlite:///{warehouse}",
    }
    env.pop("HOOK_SECRET", None)
    return Cli(config, env)


def received(receiver: SandboxServer) -> list[dict[str, Any]]:
    import httpx

    return httpx.get(f"{receiver.url}/_received").json()["deliveries"]


def test_sync_records_exact_progress_and_delivers_once_per_change(
    cli: Cli, warehouse: Path, receiver: SandboxServer
) -> None:
    cli("validate")
    first = cli.json("sync")
    assert first["changed"] == 1 and first["delivered"] == 1 and first["errors"] == []

    status = cli.json("status")
    (objective,) = status["objectives"]
    (kr,) = objective["key_results"]
    assert Decimal(kr["value"]) == Decimal("375.5")
    assert Decimal(kr["progress"]) == Decimal("0.3755")
    assert kr["status"] in {"on_track", "at_risk", "off_track"}
    assert len(received(receiver)) == 1

    again = cli.json("sync")  # nothing changed at the source
    assert again["changed"] == 0 and again["delivered"] == 0
    assert len(received(receiver)) == 1

    with sqlite3.connect(warehouse) as db:
        db.execute("INSERT INTO deals (amount, won, closed_on) VALUES (1000, 1, '2026-11-20')")
    third = cli.json("sync", "--kr", "bookings")
    assert third["changed"] == 1 and third["delivered"] == 1
    deliveries = received(receiver)
    assert len(deliveries) == 2
    last = deliveries[-1]["body"]
    assert last["value"] == "1375.5" and last["progress"] == "1.3755"  # unclamped in the store
    assert last["progress_display"] == "1"

    history = cli.json("history", "bookings")["measurements"]
    assert [m["value"] for m in history] == ["375.5", "1375.5"]

    explained = cli.json("explain", "bookings")
    (source,) = explained["measurement"]["provenance"]
    assert source["connection"] == "warehouse"
    assert source["query"].startswith("SELECT SUM(amount) FROM deals")
    assert source["digest"].startswith("sha256:")
    assert explained["run"]["id"] == third["run_id"]
    human = cli("explain", "bookings").stdout
    assert "warehouse" in human and "SELECT SUM(amount)" in human


def test_plan_touches_nothing(cli: Cli, receiver: SandboxServer, tmp_path: Path) -> None:
    planned = cli.json("plan")
    assert planned["store_ready"] is False
    (change,) = planned["changes"]
    assert change["key_result"] == "bookings" and change["new"] == "375.5"
    assert change["mirrors"] == [f"hook: POST {receiver.url}/okr (key_result.updated)"]
    assert received(receiver) == []
    if cli.env["OKRSYNC_DATABASE_URL"].startswith("sqlite"):
        assert not Path(cli.env["OKRSYNC_DATABASE_URL"].removeprefix("sqlite:///")).exists()
    cli("sync")
    assert cli.json("plan")["unchanged"] == ["bookings"]


def test_broken_config_names_file_line_and_key(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace("target: 1000", "target: lots"))
    done = cli("validate", expect=2)
    assert f"{cli.config}:23" in done.stderr
    assert "target" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_failing_connection_is_reported_and_others_go_on(cli: Cli, tmp_path: Path) -> None:
    cli.env["WAREHOUSE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}"
    done = cli("sync", "--json", expect=1)
    report = json.loads(done.stdout)
    assert report["changed"] == 0
    assert any("warehouse" in e for e in report["errors"])
