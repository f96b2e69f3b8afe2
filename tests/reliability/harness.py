"""Pieces of the crash harness: watching the fakes, and starting and killing daemons.

Watch wraps a fake and may answer late (the sandbox's own LATENCY fault cannot be used on
requests with a body: see ``test_sandbox_faults.py``). It knows how many requests are being
answered right now, when the last one began and ended, and can hand every answered body to a
callback (the harness learns which values the source actually served). Launcher drives
``fork_daemon.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPO = Path(__file__).resolve().parents[2]

Capture = Callable[[str, str, bytes], None]  # path, query string, response body


class Watch:
    """Pure ASGI middleware: requests in flight, and events for "one began" / "one ended"."""

    def __init__(self, app: ASGIApp, *, delay: float = 0.0, capture: Capture | None = None) -> None:
        self.app = app
        self.delay = delay  # answer this much later (the fake still answers a gone client)
        self.capture = capture
        self._lock = threading.Lock()
        self.in_flight = 0
        self.requests = 0
        self.last_began = 0.0
        self.last_ended = 0.0
        self.began = threading.Event()
        self.ended = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.in_flight += 1
            self.requests += 1
            self.last_began = time.monotonic()
        self.began.set()
        chunks: list[bytes] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            await self.app(scope, receive, sending)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_ended = time.monotonic()
            if self.capture is not None and chunks:
                query = scope.get("query_string", b"").decode("latin-1")
                self.capture(scope["path"], query, b"".join(chunks))
            self.ended.set()


class Launcher:
    """One warm ``fork_daemon`` process; each :meth:`start` is a fresh daemon process."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.fork_daemon", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _send(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the launcher died (exit {self.proc.poll()})")
        return line

    def _expect(self, word: str) -> str:
        line = self._read()
        head, _, rest = line.partition(" ")
        if head != word:
            raise RuntimeError(f"launcher said {line!r}, expected {word!r}")
        return rest

    def start(self, log: Path) -> int:
        answer = self._send(f"start {log}")
        head, _, pid = answer.partition(" ")
        if head != "pid":
            raise RuntimeError(f"launcher said {answer!r}")
        return int(pid)

    def reap(self, pid: int) -> int:
        answer = self._send(f"reap {pid}")
        head, _, code = answer.partition(" ")
        if head != "exit":
            raise RuntimeError(f"launcher said {answer!r}")
        return int(code)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def log_events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines a daemon wrote (partial last lines of a killed process skipped)."""
    events: list[dict[str, Any]] = []
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def wait_for_event(
    log: Path, event: str, pid: int, timeout: float, *, alive: Callable[[], bool]
) -> None:
    """Until the daemon ``pid`` logged ``event``; fails if it is gone or slow beyond ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == event for e in log_events(log)):
            return
        if not alive():
            break
        time.sleep(0.01)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise AssertionError(f"daemon {pid} never logged {event!r}; log tail:\n{tail}")


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
