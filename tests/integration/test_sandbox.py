"""The sandbox itself: fakes on real sockets, faults armed in-process and over HTTP, clean stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from okrsync.sandbox import Fault, FaultInjector, FaultKind, Sandbox, SandboxServer


def fake(name: str) -> Starlette:
    async def hello(request: Request) -> Response:
        return JSONResponse({"service": name, "query": dict(request.query_params)})

    async def create(request: Request) -> Response:
        return JSONResponse({"created": await request.json()}, status_code=201)

    async def boom(request: Request) -> Response:
        raise RuntimeError("a genuine bug in the fake")

    async def text(request: Request) -> Response:
        return PlainTextResponse("plain")

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/items", create, methods=["POST"]),
            Route("/boom", boom),
            Route("/text", text),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(fake("jira"), name="jira") as running:
        yield running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    server.reset()
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        yield client


def sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sandbox-")]


# --- serving and recording --------------------------------------------------------------------


def test_serves_the_fake_on_loopback(server: SandboxServer, http: httpx.Client) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert http.get("/hello").json() == {"service": "jira", "query": {}}


def test_request_log_records_method_path_query_headers_and_body(
    server: SandboxServer, http: httpx.Client
) -> None:
    http.post("/items?dry=1", json={"summary": "KR-1 at 42%"}, headers={"X-Trace": "t1"})
    [record] = server.requests
    assert (record.method, record.path, record.query) == ("POST", "/items", "dry=1")
    assert record.headers["x-trace"] == "t1"
    assert record.json_body() == {"summary": "KR-1 at 42%"}
    # ...and the fake still got the body the middleware had to read to record it
    assert http.post("/items", content=b'{"a": 1}').json() == {"created": {"a": 1}}


def test_request_log_over_http_and_admin_routes_are_not_recorded(
    server: SandboxServer, http: httpx.Client
) -> None:
    http.post("/items", json={"n": 1})
    records = http.get("/_sandbox/requests").json()
    assert [(r["method"], r["path"], r["body"]) for r in records] == [("POST", "/items", '{"n":1}')]
    assert http.delete("/_sandbox/requests").status_code == 204
    assert server.requests == []


# --- faults -----------------------------------------------------------------------------------


def test_faults_injectable_over_http(server: SandboxServer, http: httpx.Client) -> None:
    armed = http.post(
        "/_sandbox/faults",
        json={"kind": "status", "status": 429, "retry_after": "7", "path": "^/hello", "times": 2},
    )
    assert armed.status_code == 201
    assert http.get("/text").status_code == 200  # path does not match
    for _ in range(2):
        limited = http.get("/hello")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
        assert limited.json()["status"] == 429
    assert http.get("/hello").status_code == 200  # used up
    assert http.get("/_sandbox/faults").json() == []
    assert len(server.requests) == 4  # faulted requests are recorded too; admin ones are not


def test_forever_fault_until_deleted_over_http(http: httpx.Client) -> None:
    http.post("/_sandbox/faults", json={"kind": "status", "status": 503, "times": -1})
    assert [http.get("/hello").status_code for _ in range(3)] == [503, 503, 503]
    assert len(http.get("/_sandbox/faults").json()) == 1
    assert http.delete("/_sandbox/faults").status_code == 204
    assert http.get("/hello").status_code == 200


def test_invalid_fault_over_http_is_422(http: httpx.Client) -> None:
    response = http.post("/_sandbox/faults", json={"kind": "meteor"})
    assert response.status_code == 422
    assert http.post("/_sandbox/faults", content=b"not json").status_code == 422
    assert http.get("/_sandbox/nope").status_code == 404


def test_method_filter(server: SandboxServer, http: httpx.Client) -> None:
    server.faults.add(Fault(kind=FaultKind.STATUS, status=500, method="post"))
    assert http.get("/hello").status_code == 200
    assert http.post("/items", json={}).status_code == 500


def test_status_fault_with_body_and_headers(server: SandboxServer, http: httpx.Client) -> None:
    body = '[{"message": "bad", "errorCode": "MALFORMED_QUERY"}]'
    server.faults.add(Fault(kind=FaultKind.STATUS, status=400, body=body, headers={"X-A": "b"}))
    response = http.get("/hello")
    assert (response.status_code, response.text) == (400, body)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-a"] == "b"


def test_latency_fault_delays_then_passes_through(
    server: SandboxServer, http: httpx.Client
) -> None:
    server.faults.add(
        Fault(kind=FaultKind.LATENCY, delay=0.3, headers={"X-RateLimit-Remaining": "0"})
    )
    started = time.monotonic()
    response = http.get("/hello?x=1")
    assert time.monotonic() - started >= 0.3
    assert response.json() == {"service": "jira", "query": {"x": "1"}}
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_timeout_fault_outlasts_the_client(server: SandboxServer) -> None:
    server.reset()
    server.faults.add(Fault(kind=FaultKind.TIMEOUT, delay=0.3))
    with httpx.Client(base_url=server.url, timeout=0.1) as short, pytest.raises(httpx.ReadTimeout):
        short.get("/hello")
    server.faults.add(Fault(kind=FaultKind.TIMEOUT, delay=0.1))
    with httpx.Client(base_url=server.url, timeout=2.0) as patient:
        assert patient.get("/hello").status_code == 504


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "body"),
    [
        (Fault(kind=FaultKind.MALFORMED), 200, "application/json", '{"truncated": '),
        (Fault(kind=FaultKind.EMPTY), 200, "application/json", ""),
        (Fault(kind=FaultKind.HTML), 200, "text/html; charset=utf-8", None),
        (Fault(kind=FaultKind.HTML, status=503), 503, "text/html; charset=utf-8", None),
    ],
)
def test_bad_bodies(
    server: SandboxServer,
    http: httpx.Client,
    fault: Fault,
    status: int,
    content_type: str,
    body: str | None,
) -> None:
    server.faults.add(fault)
    response = http.get("/hello")
    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    if body is not None:
        assert response.text == body
    else:
        assert response.text.startswith("<!DOCTYPE html>")


def test_truncated_fault_is_a_protocol_error_without_an_error_log(
    server: SandboxServer, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.add(Fault(kind=FaultKind.TRUNCATED))
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|expected"):
            http.get("/hello")
        assert http.get("/hello").status_code == 200  # the next request is fine
        time.sleep(0.05)
        assert [r for r in caplog.records if r.name == "uvicorn.error"] == []
        # ...while a genuine bug in a fake is still logged
        assert http.get("/boom").status_code == 500
        time.sleep(0.05)
        assert any("Exception in ASGI" in r.getMessage() for r in caplog.records)


def test_fault_validation() -> None:
    with pytest.raises(ValidationError):
        Fault(kind=FaultKind.STATUS, times=0)
    with pytest.raises(ValidationError):
        Fault(kind=FaultKind.STATUS, path="(")
    with pytest.raises(ValidationError):
        Fault(kind=FaultKind.STATUS, status=99)
    with pytest.raises(ValidationError):
        Fault.model_validate({"kind": "status", "colour": "red"})


def test_injector_is_safe_across_threads() -> None:
    injector = FaultInjector()
    injector.add(Fault(kind=FaultKind.STATUS, times=500))
    taken: list[Fault | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            fault = injector.take("GET", "/x")
            with lock:
                taken.append(fault)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(f is not None for f in taken) == 500
    assert injector.pending() == []


# --- lifecycle --------------------------------------------------------------------------------


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = SandboxServer(fake("x")).url


def test_sandbox_starts_three_fakes_and_stops_cleanly() -> None:
    before = len(sandbox_threads())
    sandbox = Sandbox({name: fake(name) for name in ("jira", "salesforce", "slack")})
    with sandbox:
        urls = sandbox.urls
        assert len(set(urls.values())) == 3
        for name, url in urls.items():
            assert httpx.get(f"{url}/hello").json()["service"] == name
        sandbox["slack"].faults.add(Fault(kind=FaultKind.STATUS, status=429))
        assert httpx.get(f"{urls['slack']}/hello").status_code == 429
        assert httpx.get(f"{urls['jira']}/hello").status_code == 200  # faults are per fake
        assert len(sandbox_threads()) == before + 3
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert len(sandbox_threads()) == before
    for url in urls.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/hello", timeout=1.0)


def test_stop_is_fast_with_a_request_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    server = SandboxServer(fake("slow"), name="slow").start()
    server.faults.add(Fault(kind=FaultKind.LATENCY, delay=30.0))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{server.url}/hello", timeout=10.0))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        server.stop()
    assert time.monotonic() - started < 1.0
    caller.join(5.0)
    assert not caller.is_alive()
    # the cut-short request fails one way or the other, and quietly
    [result] = outcome
    assert isinstance(result, httpx.HTTPError) or result.status_code == 500  # type: ignore[attr-defined]
    assert [r for r in caplog.records if r.name == "uvicorn.error"] == []
    assert not any(t.name == "sandbox-slow" for t in threading.enumerate())


def test_a_fake_whose_startup_fails_raises() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot start")
        yield

    before = len(sandbox_threads())
    server = SandboxServer(Starlette(lifespan=lifespan), name="broken")
    with pytest.raises(RuntimeError, match="'broken' failed to start"):
        server.start()
    assert len(sandbox_threads()) == before


def test_a_port_in_use_fails_loudly(server: SandboxServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        SandboxServer(fake("x"), port=port).start()


async def test_usable_from_async_tests_too(server: SandboxServer) -> None:
    server.reset()
    async with httpx.AsyncClient(base_url=server.url) as client:
        responses = await asyncio.gather(*(client.get("/hello") for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert len(server.requests) == 5
