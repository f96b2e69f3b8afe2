"""Every broken config through the CLI: ``okrsync validate`` exits 2, names file, line and key.

``test_config_loader.py`` checks the loader's errors; this checks what a user actually sees: exit
code 2, each expected ``FILE:LINE: KEY: message`` on stderr and no traceback anywhere. The corpus
runs ``validate`` in this process through typer's ``CliRunner`` (the command, its error handling
and its consoles are the real ones; ~70 interpreters, one per file, took about a minute and more
than the per-test timeout on a busy machine), and two cases run the real console entry point in
a subprocess.

The corpus uses the test connector types ``fake_sql`` and ``fake_hook``, so the CLI gets them
the way a third-party plugin would arrive: a ``*.dist-info`` with an ``okrsync.connectors`` entry
point, on ``sys.path`` (in process) or on ``PYTHONPATH`` (subprocess).

Rich wraps console output at 80 columns when stderr is not a terminal, which would cut
``FILE:LINE:`` in two; the CLI's error console does not wrap, which
:func:`test_errors_are_not_wrapped_when_stderr_is_not_a_terminal` shows on a real process
(``COLUMNS`` unset); the other subprocess sets ``COLUMNS`` wide.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from okrsync import cli

REPO = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "broken_configs"
SECRETS_DIR = "/nonexistent-okrsync-secrets"

PLUGIN_MODULE = """\
from tests.unit.config_fixtures import CONNECTORS

fake_sql = CONNECTORS["fake_sql"]
fake_hook = CONNECTORS["fake_hook"]
fake_tracker = CONNECTORS["fake_tracker"]
"""
ENTRY_POINTS = """\
[okrsync.connectors]
fake_sql = okrsync_corpus_plugins:fake_sql
fake_hook = okrsync_corpus_plugins:fake_hook
fake_tracker = okrsync_corpus_plugins:fake_tracker
"""
METADATA = "Metadata-Version: 2.1\nName: okrsync-corpus-plugins\nVersion: 0\n"

# Files whose CLI output is wrong because of a bug outside the tests (strict: fixing it is noticed).


def _expectations() -> dict[str, list[dict[str, Any]]]:
    table = yaml.safe_load((BROKEN / "expected.yaml").read_text(encoding="utf-8"))
    return dict(sorted(table.items()))


EXPECTED = _expectations()


def _plugins(root: Path) -> Path:
    """A directory that, on ``PYTHONPATH``, installs the corpus's two test connector types."""
    (root / "okrsync_corpus_plugins.py").write_text(PLUGIN_MODULE)
    info = root / "okrsync_corpus_plugins-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


# The environment of every run: no variable of the developer's leaks in, the corpus's own are set.
DROPPED = frozenset({"DB_URL", "HOOK_SECRET", "COLUMNS"})
SET = {"WAREHOUSE_URL": "sqlite:///x.db", "OKRSYNC_SECRETS_DIR": SECRETS_DIR, "NO_COLOR": "1"}


def _dropped(key: str) -> bool:
    return key in DROPPED or key.startswith("OKRSYNC_")


@dataclass(frozen=True)
class Validated:
    """What a user sees of one ``okrsync validate``."""

    returncode: int
    stdout: str
    stderr: str


def _env(plugins: Path, columns: int | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not _dropped(key)}
    env.update(SET)
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), str(REPO)])
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return env


def _validate(path: Path, env: dict[str, str]) -> Validated:
    """``okrsync validate`` through the console entry point, in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", "validate", "--config", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Validated(done.returncode, done.stdout, done.stderr)


def _seen(result: Result) -> Validated:
    """The runner's result as a user would see it: an exception the CLI let through would have
    ended the process with a traceback on stderr (the runner catches it instead)."""
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Validated(result.exit_code, result.stdout, stderr)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plugins(tmp_path_factory.mktemp("corpus_plugins"))


@pytest.fixture
def validate(plugins: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Validated]:
    """``okrsync validate`` in this process, in the environment the subprocesses get."""
    for key in list(os.environ):
        if _dropped(key):
            monkeypatch.delenv(key)
    for key, value in SET.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(plugins))  # entry points are looked up on sys.path
    monkeypatch.chdir(REPO)
    runner = CliRunner()

    def run(path: Path) -> Validated:
        return _seen(runner.invoke(cli.app, ["validate", "--config", str(path)]))

    return run


def _cases() -> list[Any]:
    cases: list[Any] = []
    for name in EXPECTED:
        cases.append(pytest.param(name, id=name))
    return cases


@pytest.mark.parametrize("name", _cases())
def test_validate_names_file_line_and_key(name: str, validate: Callable[[Path], Validated]) -> None:
    done = validate(BROKEN / name)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 2, output
    path = BROKEN / name
    lines = done.stderr.splitlines()
    for want in EXPECTED[name]:
        where = f"{path}:{want['line']}: " + (f"{want['key']}: " if want["key"] else "")
        matching = [line for line in lines if where in line]
        assert matching, f"no line with {where!r} in:\n{done.stderr}"
        message = want["message"].replace("{secrets_dir}", SECRETS_DIR)
        if "installed" not in message:  # the real CLI also has the real connector types
            assert any(message in line for line in matching), (message, matching)
    assert f"{len(EXPECTED[name])} error(s) in the config" in done.stderr


def test_every_broken_config_is_run() -> None:
    present = {p.name for p in BROKEN.glob("*.yaml")} - {"expected.yaml"}
    assert set(EXPECTED) == present  # the cases above, one per file
    assert len(present) >= 60


def test_errors_are_not_wrapped_when_stderr_is_not_a_terminal(plugins: Path) -> None:
    name = "duplicate_kr_id_across_objectives.yaml"
    done = _validate(BROKEN / name, _env(plugins, columns=None))
    where = f"{BROKEN / name}:26: objectives[1].key_results[0].id: duplicate key result id"
    assert any(where in line for line in done.stderr.splitlines()), done.stderr


def test_an_impossible_date_names_its_line_and_key(plugins: Path, tmp_path: Path) -> None:
    text = (BROKEN / "bad_date.yaml").read_text().replace("2026-10-xx", "2026-13-01")
    config = tmp_path / "impossible_date.yaml"
    config.write_text(text)
    done = _validate(config, _env(plugins, columns=10_000))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{config}:6: cycles[0].start: " in done.stderr, done.stderr
