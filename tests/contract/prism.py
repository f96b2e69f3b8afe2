"""Stoplight Prism as a validating proxy: one process in front of one fake, stopped by its PID.

Prism is installed project-locally by ``.ci/run`` (``npm ci --prefix .ci/prism``, pinned to
``@stoplight/prism-cli@5.14.2`` by ``.ci/prism/package-lock.json``). The binary is started
directly, never through ``npx``: killing ``npx`` would leave the server running.

``prism proxy --errors SPEC UPSTREAM`` validates each request against the description before
forwarding it and each upstream answer after; with ``--errors`` a violation in either direction
is answered with an error status and an ``application/problem+json`` body instead of the
upstream's answer, and every violation or refusal is logged. :meth:`PrismProxy.problems` reads
that log.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
PRISM = ROOT / ".ci" / "prism" / "node_modules" / ".bin" / "prism"
INSTALL = "npm ci --prefix .ci/prism"
READY_TIMEOUT = 50.0  # Jira's 2.4 MB description takes ~15-20 s to load on a busy 2-core machine
# What Prism logs when it refuses a request or finds an answer off the description.
PROBLEM_LINE = re.compile(r"✖|Violation|VIOLATIONS|UNPROCESSABLE_ENTITY|NO_PATH_MATCHED|violation")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def require_prism() -> Path:
    """The Prism binary (see :func:`tests.binaries.require_binary`)."""
    return require_binary(PRISM, f"{PRISM} is absent: install it with `{INSTALL}` from {ROOT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrismProxy:
    """``prism proxy --errors`` for one description in front of one upstream."""

    def __init__(self, description: Path, upstream: str, log: Path) -> None:
        self.description = description
        self.upstream = upstream
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the process; :meth:`wait_ready` waits for it (start several, then wait)."""
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    str(require_prism()),
                    "proxy",
                    "--errors",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    str(self.description),
                    self.upstream,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        assert self._process is not None, "start() first"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"prism exited with {self._process.returncode}:\n{self.output()}")
            if "Prism is listening" in self.output() and self._accepts():
                return
            time.sleep(0.2)
        pytest.fail(f"prism not listening after {READY_TIMEOUT} s:\n{self.output()[-2000:]}")

    def _accepts(self) -> bool:
        """A TCP connection succeeds (no HTTP request: it would be logged as unrouted)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def output(self) -> str:
        return ANSI.sub("", self.log.read_text(errors="replace"))

    def problems(self) -> list[str]:
        """Every refusal or violation Prism logged (once its log has stopped growing)."""
        self.settle()
        return [line for line in self.output().splitlines() if PROBLEM_LINE.search(line)]

    def settle(self, quiet: float = 0.5, limit: float = 5.0) -> None:
        """Wait until Prism's log has not grown for ``quiet`` seconds: its lines lag answers."""
        deadline = time.monotonic() + limit
        size = -1
        while time.monotonic() < deadline and size != self.log.stat().st_size:
            size = self.log.stat().st_size
            time.sleep(quiet)

    def forwarded(self) -> list[str]:
        """The ``METHOD path`` of every request Prism passed to the upstream."""
        self.settle()
        found = re.findall(r'Forwarding "(\w+)" request to (\S+?)(?:\.\.\.)?$', self.output(), re.M)
        return [f"{method.upper()} {httpx.URL(url).path}" for method, url in found]

    def __enter__(self) -> PrismProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
