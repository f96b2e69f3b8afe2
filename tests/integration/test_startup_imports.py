"""What a command imports: ``--help`` and ``validate`` load no fake, no HTTP server, no store.

Checked in a fresh interpreter by the modules it holds when the command ends (``sys.modules``),
not by timing: a mechanism, not a machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from okrsync.errors import PluginError
from okrsync.examples import starter_config
from okrsync.plugins import GROUP, InstalledConnectors, load_registry
from okrsync.sdk.connector import ImportedFactory
from tests.shipped import shipped_connectors

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


def modules_after_failure(tmp_path: Path, *args: str) -> list[str]:
    """The modules of a command that exits 2 (a config error)."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(report), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    loaded: list[str] = json.loads(report.read_text())
    return loaded


def plugins(modules: list[str]) -> list[str]:
    """The connector packages imported (``connectors.jira``, …) by type."""
    return sorted(
        m.split(".")[1] for m in modules if m.count(".") == 1 and m.startswith("connectors.")
    )


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
    # only the connectors the config names (sql and webhook), and the sql connector's models
    # without SQLAlchemy, which it imports when a query runs
    assert plugins(modules) == ["sql", "webhook"]
    assert under(modules, ("sqlalchemy",)) == []
    # typer's Rich help layout (Markdown, markdown-it) is not loaded either
    assert under(modules, ("markdown_it",)) == []
    assert "typer.rich_utils" not in modules


def test_validate_imports_each_named_connector_once_and_no_other(tmp_path: Path) -> None:
    config = tmp_path / "okrsync.yaml"
    config.write_text(
        starter_config().replace("type: sql,", "type: http_json, base_url: 'http://127.0.0.1:1',")
    )
    # http_json refuses the sql metric's fields: the errors come from http_json's models
    modules = modules_after_failure(tmp_path, "validate", "--config", str(config))
    assert plugins(modules) == ["http_json", "webhook"]


def test_an_unknown_connection_type_names_every_installed_one(tmp_path: Path) -> None:
    """Naming the installed types imports them all: only when there is an error to report."""
    config = tmp_path / "okrsync.yaml"
    config.write_text(starter_config().replace("type: sql,", "type: sqll,"))
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unknown connection type 'sqll'" in done.stderr
    assert "(did you mean 'sql'?)" in done.stderr
    assert "jira" in done.stderr.split("installed:")[1]


def test_a_lazy_registry_loads_a_plugin_when_asked_and_reports_broken_ones() -> None:
    registry = load_registry()
    connectors = registry.connectors
    assert isinstance(connectors, InstalledConnectors)
    assert connectors.loaded == []
    assert connectors["webhook"].type == "webhook"
    assert "sql" in connectors
    assert connectors.loaded == ["sql", "webhook"]
    assert "no_such_type" not in connectors
    assert connectors.get("no_such_type") is None
    assert "jira" in list(connectors)  # going over the mapping loads every plugin
    assert set(connectors.loaded) == set(connectors)
    broken = load_registry(
        [
            EntryPoint("gone", "no_such_module_okrsync:connector", GROUP),
            EntryPoint("webhook", "connectors.webhook:connector", GROUP),
        ]
    )
    assert "gone" not in broken.connectors
    assert list(broken.connectors) == ["webhook"]
    assert [(e.name, e.error.split(":")[0]) for e in broken.errors] == [
        ("gone", "ModuleNotFoundError")
    ]


def test_connectors_and_status_import_no_fake(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "connectors", "--json")
    assert "connectors.jira" in modules  # every plugin was loaded
    assert fakes(modules) == []
    assert under(modules, SERVER) == []
    env = {"OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    modules = modules_after(tmp_path, "status", "--json", env=env)
    assert fakes(modules) == []
    assert under(modules, (*SERVER, "httpx", "alembic")) == []
    assert [m for m in modules if m.startswith("connectors")] == []  # status needs no plugin


def test_every_builtin_fake_is_still_there_when_asked_for() -> None:
    """A fake is imported when first called: the demo, tests and benchmarks still get it."""
    registry = load_registry()
    with_fakes = {n: c for n, c in shipped_connectors().items() if c.fake is not None}
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
