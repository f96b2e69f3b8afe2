"""The HTTP engine against a real fake on a loopback socket, faults injected by the sandbox."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from okrsync.errors import (
    Blame,
    ConnectorError,
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
    HttpClient,
    RetryPolicy,
    describe_response,
    rule_for_status,
)

SECRET = "tok-9f8e7d6c5b4a-SECRET"
FRESH = "tok-fresh-0123456789"
FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.02, rate_limit_backoff=0.01)


class FakeVendor:
    """A tiny vendor: a few JSON routes, one of which checks a bearer token, one slow one."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.arrivals: list[float] = []  # time.monotonic() as each /paced request arrived

    async def paced(self, request: Request) -> Response:
        # The server runs in a thread of this process: its monotonic clock is the client's.
        self.arrivals.append(time.monotonic())
        return JSONResponse({"ok": True})

    async def ok(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "items": [1, 2, 3]})

    async def protected(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {FRESH}":
            return JSONResponse(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                status_code=401,
            )
        return JSONResponse({"ok": True})

    async def slow(self, request: Request) -> Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.05)
        self.active -= 1
        return JSONResponse({"ok": True})

    async def echo(self, request: Request) -> Response:
        return JSONResponse({"got": await request.json()}, status_code=201)

    async def no_content(self, request: Request) -> Response:
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ok", self.ok),
                Route("/protected", self.protected),
                Route("/slow", self.slow),
                Route("/paced", self.paced),
                Route("/echo", self.echo, methods=["POST"]),
                Route("/empty", self.no_content, methods=["PUT"]),
            ]
        )


@pytest.fixture(scope="module")
def vendor() -> FakeVendor:
    return FakeVendor()


@pytest.fixture(scope="module")
def server(vendor: FakeVendor) -> Iterator[SandboxServer]:
    with SandboxServer(vendor.app(), name="vendor") as running:
        yield running


@pytest.fixture(autouse=True)
def clean(server: SandboxServer, vendor: FakeVendor) -> None:
    server.reset()
    vendor.peak = 0
    vendor.arrivals.clear()


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[HttpClient]:
    async with make_client(server) as made:
        yield made


def make_client(server: SandboxServer, **kw: Any) -> HttpClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("headers", {"Authorization": f"Bearer {SECRET}"})
    kw.setdefault("secrets", [SECRET])
    return HttpClient(connection="acme-jira", base_url=server.url, **kw)


def arm(server: SandboxServer, kind: FaultKind = FaultKind.STATUS, **kw: Any) -> None:
    server.faults.add(Fault(kind=kind, **kw))


# --- success and retries ----------------------------------------------------------------------


async def test_success(client: HttpClient, server: SandboxServer) -> None:
    assert await client.get_json("/ok", params={"q": "x"}) == {"ok": True, "items": [1, 2, 3]}
    assert (client.calls, client.retries, client.rate_limited) == (1, 0, 0)
    [record] = server.requests
    assert (record.method, record.path, record.query) == ("GET", "/ok", "q=x")
    assert record.headers["user-agent"] == "okrsync"


async def test_post_json_and_no_content(client: HttpClient, server: SandboxServer) -> None:
    assert await client.request_json("POST", "/echo", json={"a": 1}) == {"got": {"a": 1}}
    assert await client.request_json("PUT", "/empty", json={"b": 2}) is None
    assert [json.loads(r.body) for r in server.requests] == [{"a": 1}, {"b": 2}]


async def test_503_twice_then_success(client: HttpClient, server: SandboxServer) -> None:
    arm(server, status=503, times=2)
    with capture_logs() as logs:
        assert await client.get_json("/ok") == {"ok": True, "items": [1, 2, 3]}
    assert (client.calls, client.retries) == (3, 2)
    retries = [e for e in logs if e["event"] == "http_retry"]
    assert [(e["connection"], e["status"], e["attempt"]) for e in retries] == [
        ("acme-jira", 503, 1),
        ("acme-jira", 503, 2),
    ]
    assert all(0.01 <= e["wait"] <= 0.02 for e in retries)


async def test_retries_exhausted(server: SandboxServer) -> None:
    arm(server, status=502, times=-1, body="<html><title>502 Bad Gateway</title></html>")
    async with make_client(server, retry=RetryPolicy(3, 0.01, 0.02)) as client:
        with pytest.raises(RetriableError) as caught:
            await client.get_json("/ok", subject="metric bugs_open")
    error = caught.value
    assert str(error).startswith("connection 'acme-jira', metric bugs_open: ")
    assert "HTTP 502: 502 Bad Gateway" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert (error.connection, error.subject, error.status_code) == (
        "acme-jira",
        "metric bugs_open",
        502,
    )
    assert error.blame is Blame.TRANSIENT
    assert client.calls == 3
    assert len(server.requests) == 3


async def test_connection_refused_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HttpClient(
        connection="down", base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(2, 0.01, 0.01)
    )
    async with client:
        with pytest.raises(RetriableError, match=r"connection 'down': connection failed: "):
            await client.get_json("/ok")
    assert client.calls == 2


# --- rate limits ------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds_waits_that_long(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, status=429, retry_after="1")
    started = time.monotonic()
    with capture_logs() as logs:
        assert await client.get_json("/ok") == {"ok": True, "items": [1, 2, 3]}
    waited = time.monotonic() - started
    assert waited >= 0.95  # the backoff alone would have been 0.02 s; the log says how long
    assert (client.calls, client.retries, client.rate_limited) == (2, 1, 1)
    [limited] = [e for e in logs if e["event"] == "http_rate_limited"]
    assert limited == {
        "event": "http_rate_limited",
        "log_level": "warning",
        "connection": "acme-jira",
        "status": 429,
        "attempt": 1,
        "wait": 1.0,
    }


async def test_429_with_retry_after_http_date(client: HttpClient, server: SandboxServer) -> None:
    # HTTP dates have whole seconds: two seconds ahead is a wait of one to two seconds.
    when = datetime.now(UTC) + timedelta(seconds=2)
    arm(server, status=429, retry_after=format_datetime(when, usegmt=True))
    started = time.monotonic()
    with capture_logs() as logs:
        assert await client.get_json("/ok") == {"ok": True, "items": [1, 2, 3]}
    assert time.monotonic() - started >= 0.8
    [limited] = [e for e in logs if e["event"] == "http_rate_limited"]
    assert 0.0 < limited["wait"] <= 2.0
    assert client.calls == 2


async def test_retry_after_beyond_the_cap_raises_at_once_and_pauses_the_connection(
    client: HttpClient, server: SandboxServer
) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    arm(server, status=429, retry_after=format_datetime(when, usegmt=True), times=-1)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        await client.get_json("/ok")
    assert time.monotonic() - started < 30  # not the hour, nor the 120 s we wait in place
    assert caught.value.retry_after == pytest.approx(3600, abs=2)
    assert "more than the 120s we wait in place" in str(caught.value)
    assert client.calls == 1
    # Nobody on this connection may call before then: the budget pauses the next request.
    with pytest.raises(QuotaExhaustedError, match="connection 'acme-jira'") as paused:
        await client.get_json("/ok")
    assert paused.value.resume_at is not None
    assert paused.value.resume_at == pytest.approx(time.time() + 3600, abs=5)
    assert client.calls == 1


async def test_503_with_retry_after_is_honoured_too(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, status=503, retry_after="0.3")
    started = time.monotonic()
    await client.get_json("/ok")
    assert time.monotonic() - started >= 0.3
    assert client.rate_limited == 0


async def test_classify_maps_slack_style_200_ok_false(server: SandboxServer) -> None:
    rate_limited = ErrorRule(ErrorAction.RATE_LIMITED, RateLimitedError, "Slack rate limited us")
    bad_auth = ErrorRule(ErrorAction.FAIL, CredentialsError, "Slack rejected the token")

    def slack(response: httpx.Response) -> ErrorRule | None:
        body = response.json()
        if response.status_code == 200 and body.get("ok") is False:
            return rate_limited if body.get("error") == "ratelimited" else bad_auth
        return None

    arm(server, status=200, body='{"ok": false, "error": "ratelimited"}', retry_after="0.05")
    async with make_client(server, classify=slack) as client:
        assert await client.get_json("/ok") == {"ok": True, "items": [1, 2, 3]}
        assert (client.calls, client.rate_limited) == (2, 1)
        arm(server, status=200, body='{"ok": false, "error": "invalid_auth"}')
        with pytest.raises(CredentialsError, match=r"Slack rejected the token \(HTTP 200: "):
            await client.get_json("/ok")
        assert client.calls == 3
        # a hook that cannot read the body defers to the table, and the body is reported
        arm(server, FaultKind.HTML)
        with pytest.raises(VendorResponseError, match="HTML page"):
            await client.get_json("/ok")
        arm(server, FaultKind.HTML, status=502, times=-1)
        with pytest.raises(RetriableError, match=r"HTTP 502: 502 Bad Gateway"):
            await client.get_json("/ok")


# --- credentials ------------------------------------------------------------------------------


async def test_401_refreshes_credentials_once_then_succeeds(server: SandboxServer) -> None:
    refreshes = 0

    async def refresh() -> None:
        nonlocal refreshes
        refreshes += 1
        refreshing.headers["Authorization"] = f"Bearer {FRESH}"
        refreshing.add_secret(FRESH)

    refreshing = make_client(server, refresh_credentials=refresh)
    async with refreshing:
        assert await refreshing.get_json("/protected") == {"ok": True}
    assert (refreshes, refreshing.calls) == (1, 2)
    assert [r.headers["authorization"] for r in server.requests] == [
        f"Bearer {SECRET}",
        f"Bearer {FRESH}",
    ]


async def test_401_that_a_refresh_does_not_fix_is_a_credentials_error(
    server: SandboxServer,
) -> None:
    refreshes = 0

    async def refresh() -> None:
        nonlocal refreshes
        refreshes += 1

    async with make_client(server, refresh_credentials=refresh) as client:
        with pytest.raises(CredentialsError):
            await client.get_json("/protected")
    assert (refreshes, client.calls) == (1, 2)


async def test_401_without_refresher_is_a_credentials_error(client: HttpClient) -> None:
    with pytest.raises(CredentialsError) as caught:
        await client.get_json("/protected", subject="metric pipeline")
    assert str(caught.value) == (
        "connection 'acme-jira', metric pipeline: credentials were rejected "
        "(HTTP 401: INVALID_SESSION_ID: Session expired or invalid)"
    )
    assert caught.value.status_code == 401
    assert caught.value.blame is Blame.CONFIG
    assert client.calls == 1


async def test_403_is_permission_denied_and_not_retried(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, status=403, body='{"message": "Resource not accessible by integration"}')
    with pytest.raises(CredentialsError, match=r"permission denied \(HTTP 403: Resource not"):
        await client.get_json("/ok")
    assert client.calls == 1


# --- vendor error bodies ----------------------------------------------------------------------


async def test_jira_error_collection_becomes_a_query_error(
    client: HttpClient, server: SandboxServer
) -> None:
    body = {
        "errorMessages": ["Error in the JQL Query: Expecting a field name but got 'ORDER'."],
        "errors": {},
        "status": 400,
    }
    arm(server, status=400, body=json.dumps(body))
    with pytest.raises(QueryError) as caught:
        await client.get_json("/ok", subject="metric open_bugs")
    assert str(caught.value) == (
        "connection 'acme-jira', metric open_bugs: the vendor rejected the request "
        "(HTTP 400: Error in the JQL Query: Expecting a field name but got 'ORDER'.)"
    )
    assert client.calls == 1


async def test_jira_field_errors_are_included(client: HttpClient, server: SandboxServer) -> None:
    arm(server, status=400, body='{"errorMessages": [], "errors": {"jql": "bad jql"}}')
    with pytest.raises(QueryError, match=r"\(HTTP 400: jql: bad jql\)"):
        await client.get_json("/ok")


async def test_salesforce_error_list_becomes_a_query_error(
    client: HttpClient, server: SandboxServer
) -> None:
    body = [{"message": "unexpected token: 'FORM'", "errorCode": "MALFORMED_QUERY"}]
    arm(server, status=400, body=json.dumps(body))
    with pytest.raises(
        QueryError, match=r"\(HTTP 400: MALFORMED_QUERY: unexpected token: 'FORM'\)"
    ):
        await client.get_json("/ok")


async def test_404_is_target_not_found(client: HttpClient) -> None:
    with pytest.raises(TargetNotFoundError, match=r"not found \(HTTP 404: Not Found\)"):
        await client.get_json("/nowhere")


async def test_describe_error_hook_wins(server: SandboxServer) -> None:
    arm(server, status=422, body='{"weird": {"nested": "shape"}}')
    async with make_client(server, describe_error=lambda r: r.json()["weird"]["nested"]) as c:
        with pytest.raises(QueryError, match=r"\(HTTP 422: shape\)$"):
            await c.get_json("/ok")


async def test_an_ignore_rule_returns_the_response(server: SandboxServer) -> None:
    table = {**DEFAULT_ERROR_TABLE, 404: ErrorRule(ErrorAction.IGNORE, ConnectorError, "")}
    async with make_client(server, error_table=table) as client:
        response = await client.request("GET", "/nowhere")
    assert response.status_code == 404


# --- bodies that are not JSON -----------------------------------------------------------------


async def test_html_page_is_a_vendor_response_error(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, FaultKind.HTML)
    with pytest.raises(VendorResponseError) as caught:
        await client.get_json("/ok", subject="metric x")
    message = str(caught.value)
    assert message.startswith("connection 'acme-jira', metric x: the vendor sent an HTML page")
    assert "text/html" in message
    assert "<title>502 Bad Gateway</title>" in message
    assert len(message) < 400
    assert caught.value.blame is Blame.VENDOR
    assert client.calls == 1


async def test_malformed_json_is_a_vendor_response_error(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, FaultKind.MALFORMED)
    with pytest.raises(VendorResponseError) as caught:
        await client.get_json("/ok")
    assert "not valid JSON" in str(caught.value)
    assert "application/json" in str(caught.value)
    assert '{"truncated":' in str(caught.value)


async def test_empty_body_is_a_vendor_response_error(
    client: HttpClient, server: SandboxServer
) -> None:
    arm(server, FaultKind.EMPTY)
    with pytest.raises(VendorResponseError, match="empty body"):
        await client.get_json("/ok")


async def test_truncated_transfer_is_retried(client: HttpClient, server: SandboxServer) -> None:
    arm(server, FaultKind.TRUNCATED)
    assert await client.get_json("/ok") == {"ok": True, "items": [1, 2, 3]}
    assert client.calls == 2


async def test_truncated_every_time_gives_up_with_a_connection_error(
    server: SandboxServer,
) -> None:
    arm(server, FaultKind.TRUNCATED, times=-1)
    async with make_client(server, retry=RetryPolicy(2, 0.01, 0.01)) as client:
        with pytest.raises(RetriableError, match=r"connection failed: .*incomplete|closed"):
            await client.get_json("/ok")
    assert client.calls == 2


async def test_timeout(server: SandboxServer) -> None:
    arm(server, FaultKind.TIMEOUT, delay=3.0, times=-1)
    started = time.monotonic()
    async with make_client(server, timeout=0.2, retry=RetryPolicy(2, 0.01, 0.01)) as client:
        with pytest.raises(RetriableError) as caught:
            await client.get_json("/ok", subject="metric slow")
    assert time.monotonic() - started < 1.5
    assert str(caught.value) == (
        "connection 'acme-jira', metric slow: timed out after 0.2s (gave up after 2 attempts)"
    )
    assert client.calls == 2


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        (FaultKind.STATUS, 400, json.dumps({"errorMessages": [f"bad token {SECRET}"]})),
        (FaultKind.STATUS, 503, f"upstream said: Authorization: Bearer {SECRET}"),
        (FaultKind.STATUS, 429, json.dumps({"message": f"slow down {SECRET}"})),
        (FaultKind.HTML, 200, f"<html><body>token={SECRET}</body></html>"),
        (FaultKind.MALFORMED, 200, f'{{"token": "{SECRET}", '),
    ],
)
async def test_secrets_never_appear_in_errors_or_logs(
    server: SandboxServer, kind: FaultKind, status: int, body: str
) -> None:
    arm(server, kind, status=status, body=body, times=-1)
    with capture_logs() as logs:
        async with make_client(server, retry=RetryPolicy(2, 0.01, 0.01, 120.0, 0.01)) as client:
            with pytest.raises(ConnectorError) as caught:
                await client.get_json("/ok", subject="metric s")
    error = caught.value
    rendered = [str(error), repr(error), error.message, *map(str, error.args)]
    assert all(SECRET not in text for text in rendered), rendered
    assert "***" in str(error)
    assert SECRET not in repr(logs)
    assert error.__cause__ is None  # nothing unredacted hides in the chain
    # the request did carry the secret: it is redaction, not absence, that keeps it out
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


# --- the call budget over the wire ------------------------------------------------------------


async def test_concurrency_limit_holds_on_the_wire(
    server: SandboxServer, vendor: FakeVendor
) -> None:
    budget = CallBudget(BudgetPolicy(max_concurrency=2))
    async with make_client(server, budget=budget) as client:
        await asyncio.gather(*(client.get_json("/slow") for _ in range(8)))
    assert vendor.peak == 2
    assert (budget.calls, client.calls) == (8, 8)


async def test_rate_limit_headers_hold_the_next_request(server: SandboxServer) -> None:
    arm(
        server,
        status=200,
        body='{"ok": true}',
        headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "0.4"},
    )
    async with make_client(server) as client:
        await client.get_json("/ok")
        started = time.monotonic()
        await client.get_json("/ok")
    assert time.monotonic() - started >= 0.35


async def test_requests_per_second_paces_the_wire(
    vendor: FakeVendor, server: SandboxServer
) -> None:
    # The bucket never holds more than one token (burst 1) and earns the next one every
    # 1/rate seconds, reserving them in order: counted from any moment before the first
    # request, the k-th request (from 0) cannot leave before that moment + k/rate, however the
    # six are scheduled. A busy machine only makes a request late, never early, so every
    # arrival must lie at or after its bound. (The span between the first and the last arrival
    # is no measure of the pace: the slots are fixed from the first token on, so a first
    # request that arrives late, say while its connection is opened, shortens the span.)
    rate = 20.0
    budget = CallBudget(BudgetPolicy(requests_per_second=rate))
    async with make_client(server, budget=budget) as client:
        start = time.monotonic()
        await asyncio.gather(*(client.get_json("/paced") for _ in range(6)))
    arrivals = sorted(vendor.arrivals)
    assert len(arrivals) == budget.calls == 6
    # 1 µs of slack for float rounding and the event loop's timer resolution (1 ns)
    early = [(k, at - start) for k, at in enumerate(arrivals) if at - start < k / rate - 1e-6]
    assert not early, f"requests arrived before the pace allows (k, seconds after start): {early}"


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "error"),
    [
        (200, None, None),
        (400, ErrorAction.FAIL, QueryError),
        (401, ErrorAction.REFRESH_CREDENTIALS, CredentialsError),
        (403, ErrorAction.FAIL, CredentialsError),
        (404, ErrorAction.FAIL, TargetNotFoundError),
        (408, ErrorAction.RETRY, RetriableError),
        (409, ErrorAction.RETRY, RetriableError),
        (418, ErrorAction.FAIL, ConnectorError),
        (422, ErrorAction.FAIL, QueryError),
        (425, ErrorAction.RETRY, RetriableError),
        (429, ErrorAction.RATE_LIMITED, RateLimitedError),
        (500, ErrorAction.RETRY, RetriableError),
        (504, ErrorAction.RETRY, RetriableError),
        (599, ErrorAction.RETRY, RetriableError),
    ],
)
def test_default_error_table(
    status: int, action: ErrorAction | None, error: type[ConnectorError] | None
) -> None:
    rule = rule_for_status(status, DEFAULT_ERROR_TABLE)
    got = (rule.action, rule.error) if rule is not None else (None, None)
    assert got == (action, error)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (ErrorAction.RETRY, QueryError),
        (ErrorAction.RATE_LIMITED, RetriableError),
        (ErrorAction.FAIL, RetriableError),
        (ErrorAction.REFRESH_CREDENTIALS, RateLimitedError),
    ],
)
def test_inconsistent_rules_are_refused(action: ErrorAction, error: type[ConnectorError]) -> None:
    with pytest.raises(ValueError):
        ErrorRule(action, error, "x")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"message": "Not Found", "documentation_url": "https://x"}, "Not Found"),
        ({"error": {"code": 400, "message": "bad dim", "status": "INVALID_ARGUMENT"}}, "bad dim"),
        ({"ok": False, "error": "channel_not_found"}, "channel_not_found"),
        ({"type": "validation_error", "detail": "bad attr"}, "bad attr"),
        ({"errors": [{"message": "a"}, {"message": "b"}]}, "a; b"),
        ({"title": "Forbidden", "status": 403}, "Forbidden"),
        ([], "[]"),
    ],
)
def test_describe_response_reads_common_shapes(body: object, detail: str) -> None:
    response = httpx.Response(400, json=body)
    assert describe_response(response) == detail


async def test_vendor_detail_is_shortened(client: HttpClient, server: SandboxServer) -> None:
    arm(server, status=400, body="x" * 1000)
    with pytest.raises(QueryError) as caught:
        await client.get_json("/ok")
    assert caught.value.message == f"the vendor rejected the request (HTTP 400: {'x' * 199}…)"


@pytest.mark.parametrize("kind", [FaultKind.STATUS, FaultKind.MALFORMED])
async def test_a_secret_cut_by_the_length_limit_is_still_redacted(
    client: HttpClient, server: SandboxServer, kind: FaultKind
) -> None:
    # The limits are 200 (detail) and 120 (snippet) characters: put the secret across both.
    for at in (110, 190):
        server.reset()
        arm(server, kind, status=400, body="a" * at + SECRET + "b" * 300)
        with pytest.raises(ConnectorError) as caught:
            await client.get_json("/ok")
        assert SECRET[:6] not in str(caught.value)
