"""Pieces of the replica ordering test (``test_mirror_order_replicas.py``).

* A warm launcher, like ``fork_daemon.py`` but with an environment per start: the test starts
  replicas under their own instance id, or under none (the default id), on a fresh store and
  config for every seed, from one process that imported okrsync once. Run as
  ``python -m tests.reliability.mirror_replicas_support``; protocol, one line per message::

      start LOGFILE ENV_JSON  ->  pid N   fork a daemon with ENV_JSON's variables set (a null
                                          value unsets one); stdout and stderr go to LOGFILE
      reap N                  ->  exit S  wait for that daemon; S is its exit code or -SIGNAL

* :class:`SlackWatch`, ASGI middleware around the Slack fake that keeps what no fake keeps: the
  history of what each message showed (snapshotted under the fake's lock right after each write
  is applied, in the order they were applied), and the answers it gave per method (429s).
* Reading the store and the replicas' JSON logs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import create_engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.slack.fake import SlackState

REPO = Path(__file__).resolve().parents[2]
WRITES = ("/api/chat.postMessage", "/api/chat.update")

# --- the launcher (the process side) ---------------------------------------------------------


def _child(log: str, env: dict[str, str | None], args: list[str]) -> NoReturn:
    code = 1
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        import okrsync.cli

        sys.argv = ["okrsync", *args]
        try:
            okrsync.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    from okrsync.plugins import load_registry

    for module in ("okrsync.engine.daemon", "okrsync.api.app", "okrsync.api.server"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    load_registry()
    args = sys.argv[1:]
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "start":
            log, _, env = rest.partition(" ")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(log, json.loads(env), args)
            print(f"pid {pid}", flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(rest), 0)
            print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)
        else:
            print(f"error unknown command {command!r}", flush=True)


# --- the launcher (the test side) -------------------------------------------------------------


class ReplicaLauncher:
    """One warm launcher process; each :meth:`start` forks a fresh ``okrsync run``."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.mirror_replicas_support", *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        head = self._read()
        if head != "ready":
            raise RuntimeError(f"launcher said {head!r}")

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the launcher died (exit {self.proc.poll()})")
        return line

    def _ask(self, line: str, expect: str) -> str:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self._read()
        head, _, rest = answer.partition(" ")
        if head != expect:
            raise RuntimeError(f"launcher said {answer!r}, expected {expect!r}")
        return rest

    def start(self, log: Path, env: dict[str, str | None]) -> int:
        return int(self._ask(f"start {log} {json.dumps(env)}", "pid"))

    def reap(self, pid: int) -> int:
        """The exit code of a daemon that has ended (blocks until it has)."""
        return int(self._ask(f"reap {pid}", "exit"))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# --- the Slack fake, watched -------------------------------------------------------------------

_VALUE = re.compile(r"\((-?[0-9][0-9.,]*) / ")


def shown_value(text: str) -> Decimal | None:
    """The value a key result's message shows: ``Title: 12% (12,345 / 100,000), on track``."""
    match = _VALUE.search(text)
    return Decimal(match[1].replace(",", "")) if match else None


@dataclass
class Shown:
    """One state a Slack message showed: when (monotonic), which write made it, the value."""

    at: float
    write: int
    value: Decimal | None


class Completing:
    """A vendor that finishes what it was sent: each write waits its delay (taken in order from
    ``delays``), then is applied even if the client has hung up meanwhile (the sandbox's LATENCY
    fault drops a request whose client went away). Opt-in, see the test's docstring."""

    def __init__(self, app: ASGIApp, delays: list[float]) -> None:
        self.app = app
        self.delays = delays
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in WRITES:
            with self._lock:
                delay = self.delays.pop(0) if self.delays else 0.0
            await asyncio.sleep(delay)
        await self.app(scope, receive, send)


@dataclass
class SlackWatch:
    """Pure ASGI middleware around the Slack fake (inside the sandbox's fault middleware).

    Right after a write (``chat.postMessage``, ``chat.update``) was applied — when its answer
    starts, which the fake's handler reaches without giving the event loop away, so no other
    write can come in between — every bot message of ``channel`` is read under the fake's lock
    and each one whose shown value changed gets a new entry in :attr:`history`.
    """

    app: ASGIApp
    state: SlackState
    channel: str
    history: dict[str, list[Shown]] = field(default_factory=lambda: defaultdict(list))
    subjects: dict[str, str] = field(default_factory=dict)  # message ts -> key result id
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (method, status)
    applied: Counter[str] = field(default_factory=Counter)  # writes answered 200 per method
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method = path.rsplit("/", 1)[-1]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                with self.lock:
                    self.answers[(method, status)] += 1
                    if path in WRITES and status == 200:
                        self.applied[method] += 1
                        self._snapshot()
            await send(message)

        await self.app(scope, receive, sending)

    def _snapshot(self) -> None:
        now = time.monotonic()
        write = sum(self.applied.values())
        with self.state.lock:
            messages = [
                (m.ts, m.text, m.metadata)
                for m in self.state.messages[self.channel]
                if m.bot_id and m.thread_ts in (None, m.ts)
            ]
        for ts, text_, meta in messages:
            payload = (meta or {}).get("event_payload") or {}
            if payload.get("kind") != "key_result":
                continue
            self.subjects[ts] = str(payload.get("id"))
            value = shown_value(text_)
            seen = self.history[ts]
            if not seen or seen[-1].value != value:
                seen.append(Shown(now, write, value))

    def regressions(self) -> list[tuple[str, str, Decimal | None, Decimal | None, float]]:
        """Every time a message showed a smaller value than it showed just before:
        (key result, message ts, before, after, monotonic time)."""
        found = []
        with self.lock:
            for ts, seen in self.history.items():
                for before, after in itertools.pairwise(seen):
                    shrank = before.value is not None and (
                        after.value is None or after.value < before.value
                    )
                    if shrank:
                        found.append((self.subjects[ts], ts, before.value, after.value, after.at))
        return found

    def rate_limited(self) -> int:
        with self.lock:
            return sum(n for (_m, status), n in self.answers.items() if status == 429)


def busiest_window(times: list[float], window: float) -> int:
    """The most of these (sorted) moments that fall in any ``window`` seconds."""
    best = 0
    for index, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window) - index)
    return best


# --- the store ---------------------------------------------------------------------------------


@dataclass
class MirrorView:
    key: str
    key_result: str
    last_seq: int
    delivered_seq: int
    lease_owner: str | None
    newest_seq: int | None  # the newest delivery's seq, status and value
    newest_status: str | None
    newest_value: Decimal | None


@dataclass
class StoreView:
    values: dict[str, Decimal | None]
    mirrors: list[MirrorView]
    deliveries: Counter[str]


def read_store(url: str) -> StoreView:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            values = {
                kr: None if value is None else Decimal(str(value))
                for kr, value in conn.execute(text("SELECT id, value FROM key_results"))
            }
            deliveries: Counter[str] = Counter(
                dict(
                    conn.execute(
                        text("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
                    ).all()
                )
            )
            newest = {
                key: (seq, status, payload)
                for key, seq, status, payload in conn.execute(
                    text(
                        "SELECT DISTINCT ON (mirror_key) mirror_key, seq, status, payload "
                        "FROM deliveries ORDER BY mirror_key, seq DESC, id DESC"
                    )
                )
            }
            mirrors = []
            for key, kr, last_seq, delivered_seq, owner in conn.execute(
                text(
                    "SELECT key, key_result_id, last_seq, delivered_seq, lease_owner "
                    "FROM mirrors ORDER BY key"
                )
            ):
                seq, status, payload = newest.get(key, (None, None, None))
                value = (payload or {}).get("value")
                mirrors.append(
                    MirrorView(
                        key,
                        kr,
                        last_seq,
                        delivered_seq,
                        owner,
                        seq,
                        status,
                        None if value is None else Decimal(str(value)),
                    )
                )
    finally:
        engine.dispose()
    return StoreView(values, mirrors, deliveries)


def lease_holders(url: str) -> set[str]:
    """Instance ids holding a mirror's lease right now (pushing, or dead within the lease)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT lease_owner FROM mirrors WHERE lease_until > now()")
            ).all()
    finally:
        engine.dispose()
    return {str(owner) for (owner,) in rows if owner}


# --- the replicas' logs ------------------------------------------------------------------------


def log_events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines a daemon wrote (a killed process's partial last line skipped)."""
    events: list[dict[str, Any]] = []
    try:
        content = log.read_text(errors="replace")
    except FileNotFoundError:
        return events
    for line in content.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


if __name__ == "__main__":
    main()
