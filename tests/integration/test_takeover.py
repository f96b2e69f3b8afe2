"""A daemon restarted after a SIGKILL takes over its own predecessor's work at once.

Leases name their owner. The default instance id is the host plus a digest of the store and the
config (not the pid), so a restarted daemon is its predecessor and frees its leases at start
instead of waiting them out (120 s). On PostgreSQL a second live process of the same deployment
on the same host cannot take the same id: it finds the id's advisory lock held and adds its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from connectors.http_json import connector as http_json
from connectors.http_json.fake import DEFAULT_TOKEN
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.store.db import make_engine, upgrade
from okrsync.store.identity import InstanceIdentity, stable_instance_id

LEASE = 120.0  # the default: a restart that waited it out would take two minutes

CONFIG = """\
version: 1
connections:
  api: {{type: http_json, url: "{api}", auth: {{type: bearer, token: "{token}"}}}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won:
    connection: api
    request_path: /v1/deals/summary
    params: {{status: won}}
    json_path: $.count
    schedule: every 2s
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: won, title: Won deals, metric: won, kind: increase, start: 0, target: 5000}}
"""


def wait_for(check: Callable[[], bool], daemon: subprocess.Popen[bytes], what: str) -> float:
    started = time.monotonic()
    while not check():
        assert daemon.poll() is None, f"the daemon exited while waiting for {what}"
        assert time.monotonic() - started < 90, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_restart_after_sigkill_takes_over_at_once(tmp_path: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is single-node: a lone daemon frees every lease at start already")
    assert http_json.fake is not None
    store = make_engine(database_url)
    upgrade(store)  # the tables exist before the daemon's first look

    def scalar(query: str) -> object:
        with store.connect() as conn:
            return conn.execute(text(query)).scalar()

    fake = http_json.fake()
    with SandboxServer(fake, name="api") as api:
        path = tmp_path / "okrsync.yaml"
        path.write_text(CONFIG.format(api=api.url, token=DEFAULT_TOKEN))
        env = {key: value for key, value in os.environ.items() if key != "OKRSYNC_INSTANCE_ID"} | {
            "OKRSYNC_CONFIG": str(path),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_HTTP_PORT": "0",
            "OKRSYNC_LOG_FORMAT": "json",
            "OKRSYNC_LEASE_SECONDS": str(LEASE),
        }
        log = (tmp_path / "daemon.log").open("ab")
        first = subprocess.Popen([sys.executable, "-m", "okrsync", "run"], env=env, stderr=log)
        try:
            wait_for(lambda: scalar("SELECT COUNT(*) FROM measurements") == 1, first, "a value")
            # the next fetch hangs: the daemon is killed in mid-pass, holding the metric's lease
            answered = len(api.requests)
            api.faults.add(Fault(kind=FaultKind.LATENCY, delay=600, times=1))
            held = "SELECT lease_owner FROM metric_states WHERE name = 'won'"
            wait_for(  # the hung request has arrived (not a pass that asked before the fault)
                lambda: len(api.requests) > answered and scalar(held) is not None,
                first,
                "a pass holding the lease",
            )
            time.sleep(1.0)  # an unhindered pass holds it for milliseconds; the hung one stays
            assert scalar(held) is not None
            asked = len(api.requests)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert len(api.requests) == asked  # the hung fetch never answered
        before = scalar("SELECT value FROM key_results WHERE id = 'won'")
        fake.state.data.add_deal(1000, status="won")
        second = subprocess.Popen([sys.executable, "-m", "okrsync", "run"], env=env, stderr=log)
        try:
            took = wait_for(
                lambda: scalar("SELECT value FROM key_results WHERE id = 'won'") != before,
                second,
                "the changed value",
            )
            owners = scalar("SELECT COUNT(DISTINCT instance_id) FROM runs")
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
    store.dispose()
    print(f"\nfirst changed value recorded {took:.1f} s after the restart (lease {LEASE:.0f} s)")
    assert owners == 1  # the restarted daemon ran under its predecessor's id
    # Start-up alone takes seconds on a loaded machine; waiting out the lease takes 120.
    assert took < LEASE / 4


def test_a_second_live_process_of_one_deployment_gets_an_id_of_its_own(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    wanted = stable_instance_id(database_url, tmp_path / "okrsync.yaml")
    assert wanted == stable_instance_id(database_url, tmp_path / "okrsync.yaml")  # stable
    assert wanted != stable_instance_id(database_url, tmp_path / "other.yaml")
    first = InstanceIdentity.claim(engine, wanted)
    second = InstanceIdentity.claim(engine, wanted)
    try:
        assert first.instance_id == wanted
        if engine.dialect.name == "postgresql":
            assert second.instance_id == f"{wanted}:{os.getpid()}"
            first.release()
            third = InstanceIdentity.claim(engine, wanted)  # free again once released
            assert third.instance_id == wanted
            third.release()
        else:  # one daemon per SQLite file (okrsync.store.single_node)
            assert second.instance_id == wanted
    finally:
        first.release()
        second.release()
        engine.dispose()


def test_the_id_never_carries_the_store_password(tmp_path: Path) -> None:
    url = "postgresql://okrsync:s3cret-pw@db.internal/okrs"
    same_but_other_password = "postgresql://okrsync:rotated@db.internal/okrs"
    config = tmp_path / "okrsync.yaml"
    assert stable_instance_id(url, config) == stable_instance_id(same_but_other_password, config)
    assert "s3cret" not in stable_instance_id(url, config)
