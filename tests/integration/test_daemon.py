"""`okrsync run` as a process: syncs on schedule, picks up changes, stops cleanly on signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals:
    connection: warehouse
    query: "SELECT COUNT(*) FROM deals"
    schedule: every 1s
objectives:
  - id: o
    title: Objective
    cycle: 2026-Q4
    key_results:
      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0, target: 10}
"""


def status(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(done.stdout))


def wait_for_value(
    env: dict[str, str], value: str, daemon: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited early: {daemon.communicate()}")
        objectives = status(env)["objectives"]
        if objectives:
            seen = objectives[0]["key_results"][0]["value"]
            if seen == value:
                return
        time.sleep(0.3)
    pytest.fail(f"value never became {value}; last seen {seen}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_syncs_on_schedule_and_stops_on_signal(
    tmp_path: Path, database_url: str, sig: signal.Signals
) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO deals DEFAULT VALUES")
    config = tmp_path / "okrsync.yaml"
    config.write_text(CONFIG.replace("WAREHOUSE", str(warehouse)))
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_HTTP_PORT": "0",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "okrsync", "run"],
        env={**env, "OKRSYNC_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_value(env, "1", daemon)
        with sqlite3.connect(warehouse) as db:
            db.execute("INSERT INTO deals DEFAULT VALUES")
        wait_for_value(env, "2", daemon)
        daemon.send_signal(sig)
        _out, err = daemon.communicate(timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events[0] == "daemon_started" and events[-1] == "daemon_stopped"
    assert events.count("run_finished") >= 2


def test_a_second_daemon_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
    config = tmp_path / "okrsync.yaml"
    config.write_text(CONFIG.replace("WAREHOUSE", str(warehouse)))
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "OKRSYNC_HTTP_PORT": "0",
    }
    first = subprocess.Popen(
        [sys.executable, "-m", "okrsync", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_value(env, "0", first)
        second = subprocess.run(
            [sys.executable, "-m", "okrsync", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert "another okrsync daemon" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert first.poll() is None  # the first one is unharmed
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=10)
    assert first.returncode == 0


def test_the_daemon_wakes_to_announce_a_stale_value_between_ticks(
    tmp_path: Path, database_url: str
) -> None:
    """Metrics run hourly; the value's 2 s deadline passes between ticks: the daemon must wake
    for it (not for a metric) and the mirror hears once that the number is stale."""
    from connectors.webhook.receiver import receiver_app
    from okrsync.sandbox import SandboxServer

    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
    app = receiver_app()
    with SandboxServer(app, name="hook") as hook:
        text = (
            CONFIG.replace("WAREHOUSE", str(warehouse))
            .replace("schedule: every 1s", "schedule: every 1h")
            .replace(
                "  warehouse:", f'  hook: {{type: webhook, url: "{hook.url}/okr"}}\n  warehouse:'
            )
            .replace(
                "      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0,"
                " target: 10}",
                "      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0,"
                " target: 10, stale_after: 2s, mirrors: [{connection: hook}]}",
            )
        )
        config = tmp_path / "okrsync.yaml"
        config.write_text(text)
        env = {
            **os.environ,
            "OKRSYNC_CONFIG": str(config),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_HTTP_PORT": "0",
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        receiver = app.state.receiver
        try:
            deadline = time.monotonic() + 60
            while len(receiver.received) < 2 and time.monotonic() < deadline:
                assert daemon.poll() is None, daemon.communicate()
                time.sleep(0.2)
            time.sleep(1.5)  # and nothing more: the episode is announced once
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=10)
        received = receiver.received
        assert [d.body["stale"] for d in received] == [False, True], err[-3000:]
        assert all(d.body["value"] == "0" for d in received)
