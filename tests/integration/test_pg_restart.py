"""The store goes away for real: a PostgreSQL server is stopped and started mid-run.

``test_store_outage`` cuts the store behind a proxy; this one stops the server itself
(``pg_ctl stop -m fast``, then ``start``), so every connection the daemon holds is terminated by
the server. The server is the test's own (``initdb`` in a temporary directory on a free port), so
the shared test server and the tests running beside this one are never touched. ``okrsync run``
runs as a subprocess with its HTTP API up, reading a vendor fake and pushing to two mirror fakes
(a webhook receiver and Slack). While the server is down the process stays up, ``/healthz``
answers 200 and ``/readyz`` 503; a value changed at the vendor meanwhile is recorded exactly once
after the restart, and each mirror gets it once.

It needs PostgreSQL's server programs (``initdb``, ``pg_ctl``; as root, ``runuser`` to run them
as ``postgres``) and is skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from connectors.http_json import connector as http_json
from connectors.http_json.fake import AnalyticsData, DealFilter
from connectors.slack.fake import BOT_TOKEN, SlackState, slack_app
from connectors.webhook.receiver import ReceiverState, receiver_app
from okrsync.sandbox import SandboxServer

T = TypeVar("T")
CHANNEL = "C0OKRS0001"

CONFIG = """\
version: 1
connections:
  crm: {type: http_json, url: "VENDOR_URL", auth: {type: bearer, token: "VENDOR_TOKEN"}}
  hook: {type: webhook, url: "RECEIVER_URL/okr"}
  chat: {type: slack, token: "SLACK_TOKEN", base_url: "SLACK_URL/api/"}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won:
    connection: crm
    request_path: /v1/deals/summary
    params: {status: won}
    json_path: $.count
    schedule: every 1s
objectives:
  - id: revenue
    title: Revenue
    cycle: q4
    key_results:
      - id: deals
        title: Won deals
        metric: won
        kind: increase
        start: 0
        target: 500
        mirrors:
          - {connection: hook}
          - {connection: chat, channel: CHANNEL}
"""


# --- a private cluster ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bindir() -> Path | None:
    """Where this machine's PostgreSQL server programs are (``initdb``, ``pg_ctl``)."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@dataclass
class Cluster:
    """A PostgreSQL server of the test's own (``initdb`` in a temporary directory, a free port),
    so stopping it cuts only this test's connections, never the shared test server's."""

    bindir: Path
    data: Path
    port: int
    user: str | None  # run the server programs as this user (PostgreSQL refuses to run as root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{program} {' '.join(args)}: {done.stderr or done.stdout}"

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.data / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def accepts_connections(self) -> bool:
        engine = create_engine(self.url, poolclass=NullPool, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        finally:
            engine.dispose()
        return True

    def wait_until_accepting(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not self.accepts_connections():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the private PostgreSQL on port {self.port} did not come back"
                )
            time.sleep(0.2)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    user: str | None = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running PostgreSQL as root needs runuser to drop to the postgres user")
        user = "postgres"
    home = Path(tempfile.mkdtemp(prefix="okrsync-pg-"))
    data = home / "data"
    if user is not None:
        shutil.chown(home, user)
    found = Cluster(bindir, data, free_port(), user)
    try:
        found.init()
        found.start()
        found.wait_until_accepting()
        yield found
    finally:
        if found.running():
            found.stop()
        shutil.rmtree(home, ignore_errors=True)


# --- the fakes ---------------------------------------------------------------------------------


@dataclass
class Fakes:
    vendor: SandboxServer
    deals: AnalyticsData
    receiver: SandboxServer
    received: ReceiverState
    slack: SandboxServer
    workspace: SlackState

    def won(self) -> int:
        return len(self.deals.deals(DealFilter(status="won")))

    def config(self) -> str:
        return (
            CONFIG.replace("VENDOR_URL", self.vendor.url)
            .replace("VENDOR_TOKEN", http_json.sandbox()["token"])
            .replace("RECEIVER_URL", self.receiver.url)
            .replace("SLACK_URL", self.slack.url)
            .replace("SLACK_TOKEN", BOT_TOKEN)
            .replace("CHANNEL", CHANNEL)
        )

    def delivered_values(self) -> list[str]:
        return [d.body["value"] for d in self.received.received]

    def slack_messages(self) -> list[dict[str, Any]]:
        """The bot's messages in the channel: payload of their metadata, and edit counts."""
        return [
            {**(m.metadata or {}).get("event_payload", {}), "updates": m.updates}
            for m in self.workspace.channel_messages(CHANNEL)
            if m.metadata is not None
        ]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    assert http_json.fake is not None
    vendor_app, hook_app, chat_app = http_json.fake(), receiver_app(), slack_app()
    with (
        SandboxServer(vendor_app, name="crm") as vendor,
        SandboxServer(hook_app, name="hook") as receiver,
        SandboxServer(chat_app, name="slack") as slack,
    ):
        yield Fakes(
            vendor,
            vendor_app.state.data,
            receiver,
            hook_app.state.receiver,
            slack,
            chat_app.state.slack,
        )


# --- the test ----------------------------------------------------------------------------------


def test_the_daemon_rides_out_a_real_postgresql_restart(
    cluster: Cluster, fakes: Fakes, tmp_path: Path
) -> None:
    config = tmp_path / "okrsync.yaml"
    config.write_text(fakes.config())
    port = free_port()
    log = tmp_path / "daemon.log"
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": cluster.url,
        "OKRSYNC_LOG_FORMAT": "json",
        "OKRSYNC_PUBLIC_READ": "true",  # the test reads the API without a token
    }
    with log.open("w") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def until(check: Callable[[], T | None], what: str, seconds: float = 30) -> T:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert daemon.poll() is None, f"okrsync run exited ({daemon.returncode}): {tail()}"
            try:
                result = check()
            except (httpx.TransportError, KeyError, ValueError):
                result = None
            if result:
                return result
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; log: {tail()}")

    def tail() -> str:
        return log.read_text()[-4000:]

    def recorded() -> list[str]:
        answer = http.get("/api/v1/key-results/deals/measurements", params={"limit": 100})
        answer.raise_for_status()
        return sorted(m["value"] for m in answer.json()["measurements"] if m["value"] is not None)

    def deliveries() -> list[dict[str, Any]]:
        answer = http.get("/api/v1/deliveries", params={"limit": 100})
        answer.raise_for_status()
        rows: list[dict[str, Any]] = answer.json()["deliveries"]
        return rows

    def unready(answer: httpx.Response) -> httpx.Response | None:
        return answer if answer.status_code == 503 else None

    def all_done(count: int) -> bool:
        rows = deliveries()
        return len(rows) == count and all(row["status"] == "done" for row in rows)

    before = str(fakes.won())
    after = str(fakes.won() + 1)
    try:
        until(lambda: http.get("/readyz").status_code == 200, "/readyz")
        until(lambda: recorded() == [before], "the first value")
        # both mirrors pushed and marked done, so nothing is in flight when the server goes
        until(lambda: all_done(2), "the first deliveries")

        cluster.stop()  # every connection the daemon holds is terminated by the server
        stopped = time.monotonic()
        fakes.deals.add_deal(1000)  # the value moves at the vendor while the store is down
        down = until(lambda: unready(http.get("/readyz")), "/readyz to say 503")
        assert down.json()["checks"]["store"]["ok"] is False
        assert http.get("/healthz").status_code == 200  # the process itself is fine
        time.sleep(4)  # the daemon goes round its store backoff a few times meanwhile
        assert daemon.poll() is None, f"the daemon died with the store: {tail()}"
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200
        assert fakes.delivered_values() == [before]  # nothing pushed without the store

        cluster.start()
        cluster.wait_until_accepting()
        started = time.monotonic()
        until(lambda: http.get("/readyz").status_code == 200, "/readyz after the restart", 60)
        ready = time.monotonic()
        until(lambda: recorded() == [before, after], "the value changed during the outage", 60)
        until(lambda: all_done(4), "the deliveries of the new value", 60)
        until(lambda: fakes.delivered_values() == [before, after], "the webhook push")
        print(
            f"\nserver down {started - stopped:.1f} s; /readyz 200 {ready - started:.1f} s and "
            f"caught up {time.monotonic() - started:.1f} s after it accepted connections again"
        )

        time.sleep(2)  # a few more ticks: the new value is not recorded or pushed again
        assert daemon.poll() is None, f"the daemon exited: {tail()}"
        assert recorded() == [before, after]  # each value recorded exactly once
        assert all_done(4)
        assert fakes.delivered_values() == [before, after]  # each state pushed once
        assert fakes.received.duplicates == 0  # and never re-sent under the same key
        latest = fakes.received.latest_by_key_result["deals"]
        assert latest["value"] == after
        messages = fakes.slack_messages()
        assert fakes.workspace.posts_for("key_result", "deals") == 1  # one living message,
        assert len(messages) == 1 and messages[0]["updates"] == 1  # edited once, in place
        assert Decimal(str(messages[0]["progress"])) == Decimal(latest["progress"])

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, tail()
    finally:
        http.close()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert "store_unreachable" in names and "store_reachable_again" in names
