"""One slow vendor delays only itself: a real `okrsync run` with a vendor that hangs 30 s beside
a healthy one whose value changes every second, both ``every 3s``.

The healthy key result must keep reaching its mirror (the webhook receiver) tick after tick while
the slow vendor hangs; the slow connection must never be asked twice at once (a pass that falls
due while its fetch is still running is skipped and logged as ``fetch_still_running``); and the
slow connection must end with its ``fetch_deadline`` error in its health.

Everything is judged by counting and by ordering, with margins a loaded two-core machine keeps:
how far the mirror trails the source (in the source's own seconds), how many values arrived, how
many requests the slow vendor saw and how many were open at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.webhook.receiver import Delivery, ReceiverState, receiver_app
from okrsync.sandbox import SandboxServer

HANG = 30.0  # seconds the slow vendor takes to answer
DEADLINE = 8  # the slow connection's fetch_deadline, in seconds
TICK = 3  # both metrics run every 3 s
WINDOW = 24.0  # seconds the healthy mirror is watched after its first value arrived
LAG_BOUND = TICK + 1 + 8  # tick + its own fetch + a generous margin for a loaded machine
GRACE = 2.0


@dataclass
class Vendors:
    """Two vendors on one socket: ``/slow`` hangs, ``/fast`` answers at once.

    ``/fast`` answers the number of whole seconds since the vendors started, so the value changes
    every second and says when it was current. Each ``/slow`` request is kept with the moments it
    arrived and ended (answered, or the client went away), to count how many were open at once.
    """

    started: float = field(default_factory=time.monotonic)
    slow: list[list[float | None]] = field(default_factory=list)  # [arrived, ended]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: int = 0
    max_open: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def app(self) -> Starlette:
        async def fast(request: Request) -> Response:
            return JSONResponse({"value": int(self.now())})

        async def slow(request: Request) -> Response:
            with self._lock:
                record: list[float | None] = [self.now(), None]
                self.slow.append(record)
                self._open += 1
                self.max_open = max(self.max_open, self._open)
            try:
                until = time.monotonic() + HANG
                while time.monotonic() < until:
                    if await request.is_disconnected():
                        return Response(status_code=499)
                    await asyncio.sleep(0.05)
                return JSONResponse({"value": 1})
            finally:
                with self._lock:
                    self._open -= 1
                    record[1] = self.now()

        return Starlette(
            routes=[Route("/fast/value", fast), Route("/slow/value", slow)],
        )

    def slow_requests(self) -> list[list[float | None]]:
        with self._lock:
            return [list(r) for r in self.slow]


def config(vendor: str, hook: str) -> str:
    return f"""\
version: 1
connections:
  slow: {{type: http_json, url: "{vendor}/slow", timeout: 60, max_retries: 0,
          fetch_deadline: {DEADLINE}s}}
  fast: {{type: http_json, url: "{vendor}/fast"}}
  hook: {{type: webhook, url: "{hook}/okr"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  stuck: {{connection: slow, request_path: /value, json_path: $.value, schedule: every {TICK}s}}
  live: {{connection: fast, request_path: /value, json_path: $.value, schedule: every {TICK}s}}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: stuck, title: Stuck, metric: stuck, kind: increase, start: 0, target: 1000}}
      - {{id: live, title: Live, metric: live, kind: increase, start: 0, target: 1000,
          mirrors: [{{connection: hook}}]}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def vendors() -> Iterator[tuple[Vendors, SandboxServer]]:
    state = Vendors()
    with SandboxServer(state.app(), name="vendors") as server:
        yield state, server


def wait_until(
    check: Callable[[], bool], daemon: subprocess.Popen[bytes], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def connection_health(api: str, name: str) -> dict[str, Any]:
    try:
        answer = httpx.get(f"{api}/api/v1/connections", timeout=10)
    except httpx.TransportError:
        return {}
    if answer.status_code != 200:
        return {}
    found = [c for c in answer.json()["connections"] if c["name"] == name]
    return dict(found[0]) if found else {}


def live_values(receiver: ReceiverState) -> list[Delivery]:
    return [d for d in receiver.received if d.body["key_result"]["id"] == "live"]


def test_a_hung_vendor_delays_only_itself(
    tmp_path: Path, vendors: tuple[Vendors, SandboxServer]
) -> None:
    state, vendor = vendors
    hook_app = receiver_app()
    receiver: ReceiverState = hook_app.state.receiver
    # the arrival of each delivery in the vendors' seconds, to compare with the value it carries
    arrivals: dict[str, float] = {}
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    with SandboxServer(hook_app, name="hook") as hook:
        path = tmp_path / "okrsync.yaml"
        path.write_text(config(vendor.url, hook.url))
        env = {
            **os.environ,
            "OKRSYNC_CONFIG": str(path),
            "OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "OKRSYNC_HTTP_PORT": str(port),
            "OKRSYNC_LOG_FORMAT": "json",
            "OKRSYNC_SHUTDOWN_GRACE_SECONDS": str(GRACE),
            "OKRSYNC_PUBLIC_READ": "true",  # it reads /api/v1/connections without a token
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )

        def watch() -> int:
            """Stamp each new delivery with the vendors' clock as it is seen; how many."""
            seen = live_values(receiver)
            for delivery in seen:
                arrivals.setdefault(delivery.body["delivery_id"], state.now())
            return len(seen)

        try:
            wait_until(lambda: bool(state.slow_requests()), daemon, "the slow vendor's request")
            wait_until(lambda: watch() >= 1, daemon, "the healthy value at its mirror")
            # The first healthy value reached its mirror while the slow vendor still hung.
            first_slow = state.slow_requests()[0]
            assert first_slow[1] is None, (
                f"the healthy value waited for the slow vendor ({first_slow})"
            )
            watch_from = state.now()
            skipped_shown = False
            while state.now() < watch_from + WINDOW:
                if daemon.poll() is not None:
                    pytest.fail("the daemon exited while being watched")
                watch()
                if not skipped_shown:
                    error = connection_health(api, "slow").get("last_error") or ""
                    skipped_shown = "still fetching since" in error
                time.sleep(0.05)
            watch()
            wait_until(
                lambda: connection_health(api, "slow").get("status") == "failing",
                daemon,
                "the slow connection's health to say it failed",
            )
            slow_health = connection_health(api, "slow")
            fast_health = connection_health(api, "fast")
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=GRACE + 20)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
        assert daemon.returncode == 0, log.read_text()[-3000:]

    # deliveries that arrived after the last look (during the shutdown) were never stamped:
    # they are past the window
    deliveries = [d for d in live_values(receiver) if d.body["delivery_id"] in arrivals]
    watched = [d for d in deliveries if arrivals[d.body["delivery_id"]] <= watch_from + WINDOW]
    values = [int(d.body["value"]) for d in watched]
    # Every tick brings a new value (it changes every second): about WINDOW / TICK of them,
    # at least half of that however loaded the machine is.
    assert len(set(values)) >= WINDOW / TICK / 2, values
    assert values == sorted(values), values
    # The mirror never trails the source by more than a tick, a fetch and a margin: at every
    # arrival, the value shown before it was at most LAG_BOUND seconds old.
    shown = values[0]
    for delivery in watched[1:]:
        arrived = arrivals[delivery.body["delivery_id"]]
        if arrived > watch_from:
            assert arrived - shown <= LAG_BOUND + 1, (arrived, shown, values)
        shown = int(delivery.body["value"])
    assert watch_from + WINDOW - shown <= LAG_BOUND + 1, (shown, values)

    # The slow vendor was never asked twice at once, and not at every tick: a pass that fell
    # due while its fetch ran was skipped (and said so), and each fetch ended at its deadline.
    slow = state.slow_requests()
    assert state.max_open == 1, slow
    events = log_events(log)
    still_running = [e for e in events if e["event"] == "fetch_still_running"]
    assert still_running, [e["event"] for e in events]
    assert all(e["connections"] == ["slow"] for e in still_running), still_running
    elapsed = state.now() - (slow[0][0] or 0.0)
    assert len(slow) <= elapsed / DEADLINE + 1, (len(slow), elapsed)
    assert skipped_shown, "the slow connection's health never said it was still fetching"

    # Its health says what happened; the healthy connection's stays ok.
    assert f"no answer within {DEADLINE}s" in (slow_health.get("last_error") or ""), slow_health
    assert fast_health.get("status") == "ok", fast_health
