"""A fake's request log never drops records silently: the bound counts what it drops, says so
once in the log and over the admin route, and a benchmark's fakes keep every record."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.fakes import request_counts, start_sandbox
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.sandbox.faults import MAX_RECORDS, RequestLog, RequestRecord


def record(n: int) -> RequestRecord:
    return RequestRecord(
        method="GET", path=f"/r/{n}", query="", headers={}, body="", at=datetime.now(UTC)
    )


def hello_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return JSONResponse({"path": request.url.path})

    return Starlette(routes=[Route("/hello", hello)])


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(hello_app(), name="bounded") as running:
        yield running


def test_a_bounded_log_counts_what_it_drops_and_keeps_the_newest() -> None:
    log = RequestLog(limit=3)
    for n in range(5):
        log.append(record(n))
    assert [r.path for r in log.snapshot()] == ["/r/2", "/r/3", "/r/4"]
    assert (log.received, log.dropped, log.limit) == (5, 2, 3)
    log.clear()
    assert (log.received, log.dropped, log.snapshot()) == (0, 0, [])


def test_keep_all_lifts_the_bound_and_remembers_earlier_drops() -> None:
    log = RequestLog(limit=2)
    for n in range(3):
        log.append(record(n))
    log.keep_all()
    for n in range(3, 6):
        log.append(record(n))
    assert log.limit is None
    assert [r.path for r in log.snapshot()] == [f"/r/{n}" for n in range(1, 6)]
    assert (log.received, log.dropped) == (6, 1)


def test_the_sandbox_default_bound_overflows_visibly_over_http(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.log.limit == MAX_RECORDS  # okrsync demo's fakes stay bounded
    for n in range(MAX_RECORDS):
        server.log.append(record(n))
    with (
        caplog.at_level(logging.WARNING, logger="okrsync.sandbox.faults"),
        httpx.Client(base_url=server.url, timeout=5.0) as http,
    ):
        assert http.get("/hello").status_code == 200
        assert http.get("/hello").status_code == 200
        listed = http.get("/_sandbox/requests")
    assert listed.headers["X-Sandbox-Received"] == str(MAX_RECORDS + 2)
    assert listed.headers["X-Sandbox-Dropped"] == "2"
    records = listed.json()
    assert len(records) == MAX_RECORDS
    assert [r["path"] for r in records[-2:]] == ["/hello", "/hello"]
    assert records[0]["path"] == "/r/2"  # the two oldest went
    warnings = [r for r in caplog.records if "request log is full" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per dropped request


def test_benchmark_fakes_keep_every_request_and_refuse_a_short_count() -> None:
    sandbox, _environ, _slack = start_sandbox(load_registry(), 0.0)
    try:
        jira = sandbox["jira"]
        assert all(s.log.limit is None for s in sandbox.servers.values())
        for n in range(MAX_RECORDS + 5):
            jira.log.append(record(n))
        assert request_counts(sandbox)["jira"] == MAX_RECORDS + 5
        assert len(jira.requests) == MAX_RECORDS + 5
        bounded = RequestLog(limit=1)
        bounded.append(record(0))
        bounded.append(record(1))
        jira.log = bounded  # a log that dropped one: the count must not be trusted
        with pytest.raises(RuntimeError, match="dropped records"):
            request_counts(sandbox)
    finally:
        sandbox.stop()
