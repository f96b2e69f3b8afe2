"""CLI behaviour that does not need a vendor: plugins, schema, init, validation errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

from okrsync.config import render_schema
from okrsync.plugins import load_registry
from tests.shipped import shipped_connectors

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "config" / "okrsync.schema.json"


def okrsync(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "okrsync", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_connectors_lists_the_three_builtin_plugins() -> None:
    done = okrsync("connectors", "--json")
    assert done.returncode == 0, done.stderr
    listed = {c["type"]: c for c in json.loads(done.stdout)["connectors"]}
    assert {"sql", "http_json", "webhook"} <= set(listed)
    assert listed["sql"]["roles"] == ["source"]
    assert listed["webhook"]["roles"] == ["sink"]
    assert "url" in listed["sql"]["connection_fields"]
    assert "query" in listed["sql"]["metric_fields"]


def test_a_broken_plugin_is_reported_not_fatal() -> None:
    points = [
        EntryPoint("sql", "connectors.sql:connector", "okrsync.connectors"),
        EntryPoint("broken", "connectors.does_not_exist:connector", "okrsync.connectors"),
        EntryPoint("odd", "okrsync.errors:Blame", "okrsync.connectors"),
    ]
    registry = load_registry(points)
    assert list(registry.connectors) == ["sql"]
    errors = {e.name: e.error for e in registry.errors}
    assert "ModuleNotFoundError" in errors["broken"]
    assert "not an okrsync Connector" in errors["odd"]


def test_committed_json_schema_is_current() -> None:
    current = render_schema(shipped_connectors())  # not other installed plugins
    assert SCHEMA_FILE.read_text() == current, (
        "config/okrsync.schema.json is stale: run `okrsync schema -o config/okrsync.schema.json`"
    )


def test_init_writes_a_starter_that_validates(tmp_path: Path) -> None:
    done = okrsync("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert okrsync("init", cwd=tmp_path).returncode == 1  # never overwrites by surprise
    checked = okrsync("validate", cwd=tmp_path, env={"OKRSYNC_CONFIG": "okrsync.yaml"})
    assert checked.returncode == 0, checked.stderr
    assert "1 key results" in checked.stdout


def example_value(name: str) -> str:
    """A value of the right shape for an example's ${NAME} reference."""
    if name.endswith("_URL"):
        return "https://example.com/hook"
    if name.startswith("SLACK"):
        return "xoxb-0000-example"
    return "example-value"


def test_every_example_config_validates(tmp_path: Path) -> None:
    examples = sorted((ROOT / "config" / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    for example in examples:
        names = set(re.findall(r"\$\{([A-Z0-9_]+)", example.read_text()))
        env = {n: example_value(n) for n in names}
        env["WAREHOUSE_URL"] = "sqlite://"
        done = okrsync("validate", "--config", str(example), env=env)
        assert done.returncode == 0, f"{example.name}: {done.stderr}"


def test_config_errors_exit_2_with_file_line_key_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(
        "version: 1\n"
        "connections:\n"
        "  db: {type: sql, url: 'sqlite://'}\n"
        "cycles:\n"
        "  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n"
        "metrics:\n"
        "  won: {connection: db, query: 'SELECT 1', schedual: every 5m}\n"
        "objectives: []\n"
    )
    done = okrsync("validate", "--config", str(config))
    assert done.returncode == 2
    assert f"{config}:7" in done.stderr
    assert "metrics.won.schedual" in done.stderr
    assert "did you mean 'schedule'" in done.stderr
    assert "Traceback" not in done.stderr
