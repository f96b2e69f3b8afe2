"""`okrsync run` as one process: scheduler, dispatcher and HTTP together, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from okrsync.sdk.webhooks import sign
from tests.integration.api_support import HOOK_SECRET, TOKEN, add_deal, write_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], what: str, daemon: subprocess.Popen[str], log: Path
) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            pytest.fail(f"okrsync run exited early ({daemon.returncode}): {log.read_text()}")
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; log: {log.read_text()[-3000:]}")


def test_run_serves_http_beside_the_scheduler_and_stops_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(tmp_path, deals=2)
    port = free_port()
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_API_TOKEN": TOKEN,
        "OKRSYNC_HOOK_SECRET_WAREHOUSE": HOOK_SECRET,
        "OKRSYNC_HOOK_DEBOUNCE_SECONDS": "0.3",
        "OKRSYNC_LOG_FORMAT": "json",
    }
    log = tmp_path / "daemon.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        http = httpx.Client(base_url=base, timeout=5)
        wait_until(lambda: http.get("/healthz").status_code == 200, "/healthz", daemon, log)
        ready = wait_until(
            lambda: (r := http.get("/readyz")).status_code == 200 and r, "/readyz", daemon, log
        )
        assert ready.json()["checks"]["scheduler"]["ok"] is True

        def progress_gauge() -> bool:
            text = http.get("/metrics").text
            return 'okrsync_key_result_progress{key_result="deals",objective="o"} 0.2' in text

        wait_until(progress_gauge, "the key-result gauge", daemon, log)

        path = "/api/v1/key-results/deals/check-ins"
        signed_in = {"Authorization": f"Bearer {TOKEN}"}  # reads need a token too (issue 17)
        assert http.post(path, json={"value": 5}).status_code == 401
        checked = http.post(
            path,
            json={"value": 5, "note": "from the weekly review"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert checked.status_code == 201, checked.text
        history = subprocess.run(
            [sys.executable, "-m", "okrsync", "history", "deals", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        measurements = json.loads(history.stdout)["measurements"]
        assert measurements[-1]["origin"] == "manual"
        assert measurements[-1]["note"] == "from the weekly review"

        add_deal(config)  # 3 deals: only a webhook-triggered run can see it (schedule is 1h)
        body = b'{"event": "deal.won"}'
        stamp = str(int(time.time()))
        hooked = http.post(
            "/hooks/warehouse",
            content=body,
            headers={
                "X-Okrsync-Timestamp": stamp,
                "X-Okrsync-Signature": sign(HOOK_SECRET, stamp, body),
            },
        )
        assert hooked.status_code == 202, hooked.text
        wait_until(
            lambda: http.get("/api/v1/key-results/deals", headers=signed_in).json()["value"] == "3",
            "the webhook-triggered sync",
            daemon,
            log,
        )
        runs = http.get("/api/v1/runs", headers=signed_in).json()["runs"]
        assert "webhook" in {r["trigger"] for r in runs}
        http.close()

        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    output = log.read_text()
    assert daemon.returncode == 0, output
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "http_started" in events and "http_stopped" in events
    # leases given back at the very end (a mirror settling after a failed push) are logged last
    stopping = [event for event in events if event != "leases_released"]
    assert stopping[-1] == "daemon_stopped" or "http_stopped" in stopping[-3:]
    assert TOKEN not in output and HOOK_SECRET not in output


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "okrsync", "run", "--port", str(port)],
            env={
                **os.environ,
                "OKRSYNC_CONFIG": str(config),
                "OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
