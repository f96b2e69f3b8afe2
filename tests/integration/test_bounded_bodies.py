"""A request body costs at most its limit in memory: bodies are read as a stream and cut there.

The memory test runs the real daemon (`okrsync run`) in a subprocess and measures its resident
set through ``/proc/<pid>/status`` while eight clients each send a 200 MB chunked body (no
Content-Length, so nothing tells the server the size in advance) over real sockets. The peak
(``VmHWM``, reset just before through ``/proc/<pid>/clear_refs``) minus the resident size before
the bodies is the memory they cost. The clients watch for an early answer while they send, as
RFC 9112 asks of clients, so they read the 413 before the server cuts the connection (httpx
reads only after its last byte, and would see the connection reset).

The in-process tests check the order of the work and the edges: a body over its limit is refused
before its signature is looked at or any JSON parsed; one a little over is read to its end and
answered on a connection left open, a big one is answered with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from okrsync.api import hooks
from okrsync.api.bodies import DRAIN
from okrsync.api.hooks import MAX_HOOK_BODY
from okrsync.api.v1 import MAX_BODY
from okrsync.sdk.webhooks import WebhookRequest, WebhookVerifier, sign
from okrsync.store.db import session_scope
from okrsync.store.tables import MeasurementRow
from tests.integration.api_support import HOOK_SECRET, TOKEN, Service, api_service

BIG = 200 * 1024 * 1024
PARALLEL = 8
CHUNK = b"x" * (64 * 1024)
ALLOWED_GROWTH = 20 * 1024 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals:
    connection: warehouse
    query: "SELECT COUNT(*) FROM deals"
    schedule: every 1h
objectives:
  - id: o
    title: Objective
    cycle: 2026-Q4
    key_results:
      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0, target: 10}
"""


# --- the daemon in a subprocess ------------------------------------------------------------------


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str

    def memory(self, field: str) -> int:
        """``VmRSS`` or ``VmHWM`` of the daemon, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                number, unit = value.split()
                assert unit == "kB"
                return int(number) * 1024
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def reset_peak(self) -> None:
        """Make ``VmHWM`` start again from the current resident size (Linux ≥ 4.0)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")


def _port_from(log: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the daemon exited early:\n{log.read_text()}")
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "http_started":
                return int(json.loads(line)["port"])
        time.sleep(0.1)
    pytest.fail(f"the daemon never served HTTP:\n{log.read_text()}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A fresh daemon per test: memory one test's bodies left in its allocator would hide the
    next test's."""
    root = tmp_path
    warehouse = root / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
    config = root / "okrsync.yaml"
    config.write_text(CONFIG.replace("WAREHOUSE", str(warehouse)))
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "OKRSYNC_HOOK_SECRET_WAREHOUSE").write_text(HOOK_SECRET)
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": f"sqlite:///{root / 'store.db'}",
        "OKRSYNC_HTTP_PORT": "0",
        "OKRSYNC_SECRETS_DIR": str(secrets),
        "OKRSYNC_API_TOKEN": TOKEN,
        "OKRSYNC_LOG_FORMAT": "json",
    }
    log = root / "daemon.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        yield Daemon(process, f"http://127.0.0.1:{_port_from(log, process)}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- sending big bodies ----------------------------------------------------------------------


@dataclass
class Outcome:
    sent: int  # bytes of the body handed to the socket before the answer or the cut
    status: int | None = None
    body: Any = None
    error: str | None = None


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, Any]:
    status = int((await reader.readuntil(b"\r\n")).split()[1])
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    length = re.search(r"^content-length: *(\d+)", head, re.MULTILINE)
    assert length is not None, head
    return status, json.loads(await reader.readexactly(int(length[1])))


async def _send_big(url: str, path: str, headers: dict[str, str]) -> Outcome:
    """POST a 200 MB chunked body, made as it is sent, watching for an early answer as RFC 9112
    asks of a client: on one, stop sending and read it (httpx reads only after the last byte)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    answer = asyncio.ensure_future(_read_answer(reader))
    outcome = Outcome(sent=0)
    try:
        while not answer.done() and outcome.sent < BIG:
            writer.write(frame)
            outcome.sent += len(CHUNK)
            await writer.drain()
        if not answer.done():
            writer.write(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed the connection: read the answer
    try:
        outcome.status, outcome.body = await asyncio.wait_for(answer, timeout=120)
    except (OSError, asyncio.IncompleteReadError) as exc:  # reset before the answer was read
        outcome.error = type(exc).__name__
    finally:
        writer.close()
    return outcome


def _send_parallel(url: str, path: str, headers: dict[str, str]) -> list[Outcome]:
    async def all_at_once() -> list[Outcome]:
        return await asyncio.gather(*(_send_big(url, path, headers) for _ in range(PARALLEL)))

    return asyncio.run(all_at_once())


def _signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "X-Okrsync-Timestamp": stamp,
        "X-Okrsync-Signature": sign(HOOK_SECRET, stamp, body),
    }


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": "request body too large", "detail": f"at most {limit} bytes"}


ENDPOINTS = {
    # a signature that cannot match: the body is refused before anyone could find out
    "webhook": (
        "/hooks/warehouse",
        {"X-Okrsync-Timestamp": "0", "X-Okrsync-Signature": "x"},
        MAX_HOOK_BODY,
    ),
    "check-in": ("/api/v1/key-results/deals/check-ins", AUTH, MAX_BODY),
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_eight_parallel_200_mb_chunked_bodies_cost_the_daemon_no_memory(
    daemon: Daemon, endpoint: str
) -> None:
    path, headers, limit = ENDPOINTS[endpoint]
    with httpx.Client(base_url=daemon.url, timeout=60) as http:
        # warm up the paths the big bodies take, so that the peak measures the bodies alone
        small = b'{"event": "warm-up"}'
        assert http.post("/hooks/warehouse", content=small, headers=_signed(small)).is_success
        over = http.post(path, content=iter([CHUNK] * (limit // len(CHUNK) + 2)), headers=headers)
        assert (over.status_code, over.json()) == (413, _too_large(limit))
    daemon.reset_peak()
    before = daemon.memory("VmRSS")
    outcomes = _send_parallel(daemon.url, path, headers)
    growth = daemon.memory("VmHWM") - before
    print(f"\n{endpoint}: VmRSS {before / 2**20:.1f} MiB before, peak +{growth / 2**20:.1f} MiB")
    for outcome in outcomes:
        print(f"  {outcome}")
    answered = [o for o in outcomes if o.status is not None]
    assert answered, outcomes  # the server answers; a client watching for it reads it
    assert all((o.status, o.body) == (413, _too_large(limit)) for o in answered), outcomes
    # the rest saw the connection closed, and only after sending more than the limit
    assert all(o.sent > limit for o in outcomes), outcomes
    assert all(o.sent < BIG for o in outcomes), outcomes  # cut, not read to the end
    assert growth < ALLOWED_GROWTH, f"{growth / 2**20:.1f} MiB"
    assert daemon.process.poll() is None
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200


# --- in process: the order of the work ------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The API on a loopback socket, in this process (its server reads bodies whole first)."""
    with api_service(tmp_path, f"sqlite:///{tmp_path / 'okrsync.db'}") as svc:
        yield svc


def test_a_signed_webhook_over_the_limit_is_refused_before_its_signature_is_checked(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    real_verify = hooks.verify

    def verify(verifier: WebhookVerifier, secret: str, request: WebhookRequest) -> bool:
        checked.append(len(request.body))
        return real_verify(verifier, secret, request)

    monkeypatch.setattr(hooks, "verify", verify)
    fits = b"{" + b" " * (MAX_HOOK_BODY - 2) + b"}"
    over = fits + b" "
    with httpx.Client(base_url=service.url) as http:
        accepted = http.post("/hooks/warehouse", content=fits, headers=_signed(fits))
        assert accepted.status_code == 202, accepted.text
        assert checked == [MAX_HOOK_BODY]
        declared = http.post("/hooks/warehouse", content=over, headers=_signed(over))
        chunked = http.post("/hooks/warehouse", content=iter([over]), headers=_signed(over))
    for refused in (declared, chunked):
        assert (refused.status_code, refused.json()) == (413, _too_large(MAX_HOOK_BODY))
    assert checked == [MAX_HOOK_BODY]  # the signatures of the bodies over the limit: never


def test_a_body_a_little_over_its_limit_is_answered_on_an_open_connection_a_big_one_cut(
    service: Service,
) -> None:
    path = "/api/v1/key-results/deals/check-ins"
    with httpx.Client(base_url=service.url) as http:
        little = http.post(path, content=iter([b" " * (MAX_BODY + 1)]), headers=AUTH)
        assert (little.status_code, little.json()) == (413, _too_large(MAX_BODY))
        assert "close" not in little.headers.get("connection", "")
        big = b" " * (MAX_BODY + DRAIN + 1)
        cut = http.post(path, content=big, headers=AUTH)
        assert (cut.status_code, cut.json()) == (413, _too_large(MAX_BODY))
        assert cut.headers["connection"] == "close"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_json_body_at_its_limit_is_read_and_one_byte_more_is_refused_unread(
    service: Service, chunked: bool
) -> None:
    path = "/api/v1/key-results/deals/check-ins"
    text = b'{"value": "4", "note": "at the limit"}'
    fits = text + b" " * (MAX_BODY - len(text))

    def content(body: bytes) -> Any:
        return iter([body]) if chunked else body

    with httpx.Client(base_url=service.url) as http:
        over = http.post(path, content=content(fits + b" "), headers=AUTH)
        assert (over.status_code, over.json()) == (413, _too_large(MAX_BODY))
        sync = http.post("/api/v1/sync", content=content(b" " * (MAX_BODY + 1)), headers=AUTH)
        assert (sync.status_code, sync.json()) == (413, _too_large(MAX_BODY))
        accepted = http.post(path, content=content(fits), headers=AUTH)
        assert accepted.status_code == 201, accepted.text
    with session_scope(service.app.engine) as session:
        manual = session.exec(select(MeasurementRow).where(MeasurementRow.origin == "manual"))
        assert [row.note for row in manual] == ["at the limit"]
