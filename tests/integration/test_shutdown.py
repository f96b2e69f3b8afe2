"""SIGTERM while a fetch or a delivery hangs: `okrsync run` exits 0 within its grace period,
abandons the pass like a crash, and the next start does the work once.

The vendor (the http_json fake) and the mirror (the webhook receiver) run on real sockets in this
process; a LATENCY fault of a minute makes one of them hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.http_json import connector as http_json
from connectors.http_json.fake import DEFAULT_TOKEN
from connectors.webhook.receiver import receiver_app
from okrsync.sandbox import Fault, FaultKind, SandboxServer

GRACE = 2.0
HANG = 60.0


def config(api: str, hook: str) -> str:
    return f"""\
version: 1
connections:
  api: {{type: http_json, url: "{api}", auth: {{type: bearer, token: "{DEFAULT_TOKEN}"}}}}
  hook: {{type: webhook, url: "{hook}/okr"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won:
    connection: api
    request_path: /v1/deals/summary
    params: {{status: won}}
    json_path: $.count
    schedule: every 1h
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: won, title: Won deals, metric: won, kind: increase, start: 0, target: 500,
          mirrors: [{{connection: hook}}]}}
"""


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "okrsync", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def wait_until(check: Callable[[], bool], daemon: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 90  # start-up alone takes many seconds on a loaded machine
    while not check():
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(log: Path) -> list[str]:
    return [
        json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")
    ]


@pytest.mark.parametrize("hangs", ["fetch", "delivery"])
def test_sigterm_during_a_hung_pass_exits_in_time_and_the_next_start_resumes(
    tmp_path: Path, database_url: str, hangs: str
) -> None:
    assert http_json.fake is not None
    hook_app = receiver_app()
    receiver = hook_app.state.receiver
    with (
        SandboxServer(http_json.fake(), name="api") as api,
        SandboxServer(hook_app, name="hook") as hook,
    ):
        hung = api if hangs == "fetch" else hook
        hung.faults.add(Fault(kind=FaultKind.LATENCY, delay=HANG, times=-1))
        path = tmp_path / "okrsync.yaml"
        path.write_text(config(api.url, hook.url))
        log = tmp_path / "daemon.log"
        env = {
            **os.environ,
            "OKRSYNC_CONFIG": str(path),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_HTTP_PORT": "0",
            "OKRSYNC_LOG_FORMAT": "json",
            "OKRSYNC_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        }
        daemon = start(env, log)
        try:
            wait_until(lambda: bool(hung.requests), daemon, f"the {hangs} to reach the fake")
            time.sleep(0.2)
            signalled = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=GRACE + 15)
            took = time.monotonic() - signalled
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        assert daemon.returncode == 0, log.read_text()[-3000:]
        assert took < GRACE + 8, f"SIGTERM took {took:.1f} s"
        assert "shutdown_abandoned_pass" in events(log)
        assert receiver.received == []  # nothing reached the mirror

        hung.faults.clear()
        again = start(env, log)
        try:
            wait_until(lambda: len(receiver.received) >= 1, again, "the delivery after restart")
            time.sleep(1.0)  # and no second one
            again.send_signal(signal.SIGTERM)
            again.wait(timeout=GRACE + 15)
        finally:
            if again.poll() is None:
                again.kill()
                again.wait()
        assert again.returncode == 0
        (delivery,) = receiver.received
        assert delivery.body["key_result"]["id"] == "won"
        assert int(delivery.body["value"]) > 0
