"""What a command imports: ``--help`` and ``validate`` load no fake, no HTTP server, no store.

Checked in a fresh interpreter by the modules it holds when the command ends (``sys.modules``),
not by timing: a mechanism, not a machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from okrsync.errors import PluginError
from okrsync.examples import starter_config
from okrsync.plugins import load_registry
from okrsync.sdk.connector import ImportedFactory

WRAPPER = """
import json, sys
report, sys.argv = sys.argv[1], ["okrsync", *sys.argv[2:]]
try:
    from okrsync.cli import main
    main()
finally:
    with open(report, "w") as out:
        json.dump(sorted(sys.modules), out)
"""

SERVER = ("starlette", "uvicorn", "fastapi", "jinja2")
STORE = ("sqlmodel", "alembic", "psycopg")


def modules_after(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(report), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(report.read_text())
    return loaded


def fakes(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.startswith("connectors.")
        and (".fake" in m or m.endswith((".receiver", ".sandbox", ".tests")))
    ]


def under(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in roots]


def test_help_imports_neither_the_store_nor_the_server_nor_a_connector(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "--help")
    assert under(modules, ("sqlalchemy", *STORE, *SERVER)) == []
    assert [m for m in modules if m.startswith("connectors")] == []


@pytest.mark.parametrize("command", ["validate", "status", "plan"])
def test_a_command_help_imports_nothing_heavy(tmp_path: Path, command: str) -> None:
    modules = modules_after(tmp_path, command, "--help")
    assert under(modules, ("sqlalchemy", *STORE, *SERVER)) == []


def test_validate_imports_no_fake_no_server_no_store(tmp_path: Path) -> None:
    config = tmp_path / "okrsync.yaml"
    config.write_text(starter_config())
    modules = modules_after(tmp_path, "validate", "--config", str(config))
    assert "okrsync.config.loader" in modules  # it did read the config
    assert fakes(modules) == []
    assert under(modules, (*STORE, *SERVER)) == []
    assert "okrsync.app" not in modules  # the wiring (engine, dispatcher) is not needed


def test_connectors_and_status_import_no_fake(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "connectors", "--json")
    assert "connectors.jira" in modules  # every plugin was loaded
    assert fakes(modules) == []
    assert under(modules, SERVER) == []
    env = {"OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    modules = modules_after(tmp_path, "status", "--json", env=env)
    assert fakes(modules) == []
    assert under(modules, SERVER) == []
    assert [m for m in modules if m.startswith("connectors")] == []  # status needs no plugin


def test_every_builtin_fake_is_still_there_when_asked_for() -> None:
    """A fake is imported when first called: the demo, tests and benchmarks still get it."""
    registry = load_registry()
    with_fakes = {name: c for name, c in registry.connectors.items() if c.fake is not None}
    assert {"jira", "salesforce", "hubspot", "ga4", "slack", "webhook"} <= set(with_fakes)
    for connector in with_fakes.values():
        assert isinstance(connector.fake, ImportedFactory)
        assert connector.fake.resolve().__module__.startswith(f"connectors.{connector.type}.")
    assert dict(registry.connectors["jira"].sandbox())["email"]


def test_an_imported_factory_is_called_through() -> None:
    factory = ImportedFactory("connectors.webhook.receiver:receiver_app")
    assert callable(factory)
    assert factory().state.receiver is not None
    with pytest.raises(PluginError, match="not callable"):
        ImportedFactory("connectors.webhook.receiver:__doc__").resolve()
