"""The Dockerfile's install, performed without Docker: the same files, the same pip command, in a
fresh virtual environment (no system site-packages), then the installed ``okrsync`` runs.

Needs the package index (pip downloads every dependency, ~30-60 s); skipped when it is unreachable.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each ``FROM`` stage, in order."""
    out: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            out.append([])
        out[-1].append((word, rest))
    return out


def test_dockerfile_builds_from_the_lock_in_a_stage_the_image_leaves_behind() -> None:
    builder, runtime = stages()
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    installs = [rest for word, rest in builder if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    first, second = (c.strip() for c in installs[0].split("&&")[:2])
    assert first == "pip install --require-hashes --no-deps -r requirements.lock"
    assert second.startswith("pip install --no-deps")  # okrsync itself, nothing floating
    assert not any(word == "RUN" and "pip" in rest for word, rest in runtime)
    assert ("COPY", "--from=builder /opt/okrsync /opt/okrsync") in runtime


def test_dockerfile_runs_okrsync_as_a_non_root_service() -> None:
    steps = stages()[-1]
    values = {word: rest for word, rest in steps}
    assert values["FROM"] == "python:3.11-slim"
    assert values["USER"] not in ("root", "0")
    assert "/healthz" in values["HEALTHCHECK"]
    assert values["ENTRYPOINT"] == '["okrsync"]'
    assert values["CMD"] == '["run", "--host", "0.0.0.0"]'
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "OKRSYNC_CONFIG=/etc/okrsync/okrsync.yaml" in env
    assert "OKRSYNC_SECRETS_DIR=/run/secrets" in env


def _index_reachable(python: Path, tmp: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), "croniter"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


@pytest.mark.timeout(400)
def test_the_dockerfile_install_gives_a_working_okrsync(tmp_path: Path) -> None:
    steps = stages()[0]  # the builder
    src = tmp_path / "src"
    src.mkdir()
    for word, rest in steps:  # COPY <sources...> <dest> relative to WORKDIR /src
        if word == "COPY":
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = src / dest / Path(source).name if dest.endswith("/") else src / dest
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                    )
                else:
                    shutil.copy(origin, target)
    installs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    commands = [shlex.split(part) for part in installs[0].split("&&")]
    assert all(command[0] == "pip" for command in commands)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    if not _index_reachable(python, tmp_path / "probe"):
        pytest.skip("the package index is unreachable")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("OKRSYNC_", "PYTHON"))}
    for command in commands:  # the lock's pinned, hashed files; then okrsync; then `pip check`
        installed = subprocess.run(
            [str(python), "-m", *command],
            cwd=src,
            env={**clean_env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            capture_output=True,
            text=True,
            timeout=360,
        )
        assert installed.returncode == 0, (command, installed.stderr[-3000:])
    okrsync = env_dir / "bin" / "okrsync"
    run_env = {**clean_env, "HOME": str(tmp_path)}
    helped = subprocess.run(
        [str(okrsync), "--help"], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout
    listed = subprocess.run(
        [str(okrsync), "connectors", "--json"],
        env=run_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert '"errors": []' in listed.stdout
    assert '"type": "jira"' in listed.stdout
    # the installed package, not this checkout, answered
    where = subprocess.run(
        [str(python), "-c", "import okrsync; print(okrsync.__file__)"],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(env_dir) in where.stdout
    assert sys.prefix != str(env_dir)
