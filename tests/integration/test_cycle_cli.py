"""``okrsync cycle list | close | report`` in this process (typer's runner) on a SQLite store.

The cycles are chosen so no state depends on today's date: one ended in 2020 (closed by the
calendar), one spans centuries (active), one starts in 2099 (upcoming). The mirror is a webhook
receiver on a loopback socket; the source a SQLite warehouse.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from connectors.webhook.receiver import ReceiverState, receiver_app
from okrsync.api.check_ins import CheckInRequest, check_in
from okrsync.cli import app
from okrsync.config import load_config
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import SandboxServer
from okrsync.store.db import make_engine

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  hook: {type: webhook, url: "HOOK"}
cycles:
  - {id: 2020-Q1, start: 2020-01-01, end: 2020-03-31}
  - {id: long, start: 2000-01-01, end: 2999-12-31}
  - {id: 2099-Q1, start: 2099-01-01, end: 2099-03-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals"}
objectives:
  - id: sales
    title: Sell | more
    cycle: long
    key_results:
      - id: deals
        title: Ten deals
        metric: deals
        kind: increase
        start: 0
        target: 10
        stretch: 20
        mirrors: [{connection: hook}]
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[tuple[CliRunner, dict[str, str], Path, ReceiverState]]:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO deals DEFAULT VALUES", [()] * 4)
    hook_app = receiver_app()
    with SandboxServer(hook_app, name="hook") as hook:
        config = tmp_path / "okrsync.yaml"
        config.write_text(
            CONFIG.replace("WAREHOUSE", str(warehouse)).replace("HOOK", hook.url + "/okr")
        )
        env = {
            "OKRSYNC_CONFIG": str(config),
            "OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "OKRSYNC_LOG_LEVEL": "error",
        }
        yield CliRunner(), env, warehouse, hook_app.state.receiver


def invoke(runner: CliRunner, env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def states(runner: CliRunner, env: dict[str, str]) -> dict[str, str]:
    done = invoke(runner, env, "cycle", "list", "--json")
    assert done.exit_code == 0, done.output
    return {c["id"]: c["state"] for c in json.loads(done.stdout)["cycles"]}


def test_list_close_and_report(
    cli: tuple[CliRunner, dict[str, str], Path, ReceiverState],
) -> None:
    runner, env, warehouse, receiver = cli
    assert invoke(runner, env, "sync").exit_code == 0
    assert states(runner, env) == {"2020-Q1": "closed", "long": "active", "2099-Q1": "upcoming"}

    current = json.loads(invoke(runner, env, "cycle", "report", "long", "--json").stdout)
    assert current["final"] is False and current["state"] == "active"
    (kr,) = current["objectives"][0]["key_results"]
    # graded with the stretch: 4 of a target of 10 scores 0.7 * 0.4
    assert (kr["value"], kr["score"], kr["confidence_trend"]) == ("4", "0.28", [])
    check_in_confidence(env, 6)
    check_in_confidence(env, 8)

    closed = invoke(runner, env, "cycle", "close", "long")
    assert closed.exit_code == 0, closed.output
    assert "1 key results and 1 objectives frozen, 1 final pushes queued, 1 delivered" in (
        closed.output
    )
    finals = [d.body for d in receiver.received if d.body.get("final")]
    assert [(b["value"], b["score"], b["confidence"], b["cycle"]) for b in finals] == [
        ("4", "0.28", 8, "long")
    ]
    again = invoke(runner, env, "cycle", "close", "long")
    assert again.exit_code == 0 and "was closed already" in again.output
    assert len([d for d in receiver.received if d.body.get("final")]) == 1
    assert states(runner, env)["long"] == "closed"

    with sqlite3.connect(warehouse) as db:  # the source moves on; the closed cycle does not
        db.execute("INSERT INTO deals DEFAULT VALUES")
    synced = json.loads(invoke(runner, env, "sync", "--json").stdout)
    assert (synced["queries"], synced["api_calls"], synced["changed"]) == (0, 0, 0)
    planned = json.loads(invoke(runner, env, "plan", "--json").stdout)
    assert (planned["closed_cycles"], planned["frozen_key_results"]) == (["long"], ["deals"])
    assert (planned["queries"], planned["api_calls"], planned["changes"]) == ({}, 0, [])
    said = invoke(runner, env, "plan").stdout
    assert "closed cycles (long): 1 key results left out, their values are frozen" in said

    frozen = json.loads(invoke(runner, env, "cycle", "report", "long", "--format", "json").stdout)
    assert frozen["final"] is True and frozen["state"] == "closed"
    objective = frozen["objectives"][0]
    assert (objective["id"], objective["score"], objective["progress"]) == ("sales", "0.28", "0.4")
    (frozen_kr,) = objective["key_results"]
    assert (frozen_kr["id"], frozen_kr["value"], frozen_kr["score"]) == ("deals", "4", "0.28")
    assert (frozen_kr["confidence"], [p["confidence"] for p in frozen_kr["confidence_trend"]]) == (
        8,
        [6, 8],
    )

    markdown = invoke(runner, env, "cycle", "report", "long").stdout
    assert "final scores" in markdown and "Score **0.28**" in markdown
    assert "| Ten deals (`deals`) | 4 | 10 | 40% | on_track | 0.28 | 6 → 8 |" in markdown
    assert "## Sell \\| more (`sales`)" in markdown  # a pipe cannot break the table
    page = invoke(runner, env, "cycle", "report", "long", "--format", "html").stdout
    assert page.startswith("<!doctype html>") and page.count("<svg") == 1
    assert "<h2>Sell | more</h2>" in page


def check_in_confidence(env: dict[str, str], confidence: int) -> None:
    """A check-in of confidence only, the way the API records one."""
    registry = load_registry()
    config = load_config(Path(env["OKRSYNC_CONFIG"]), registry.connectors)
    engine = make_engine(env["OKRSYNC_DATABASE_URL"])
    try:
        request = CheckInRequest("deals", confidence=confidence, author="ana")
        check_in(engine, config, Redactor(), request, datetime.now(UTC))
    finally:
        engine.dispose()


def test_an_unknown_cycle_is_refused_with_a_hint(
    cli: tuple[CliRunner, dict[str, str], Path, ReceiverState],
) -> None:
    runner, env, _warehouse, _receiver = cli
    done = invoke(runner, env, "cycle", "close", "lng")
    assert done.exit_code == 2
    assert "unknown cycle 'lng'" in done.output and "long" in done.output
