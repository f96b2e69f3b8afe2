"""The HttpSource/HttpSink hooks over a real socket: a vendor's ``classify`` verdict (also one
bound to its connection), error rules worded per connection, a second client on the same budget,
a token refresher, the budget's readers of vendor headers, and a sink's errors naming their
mirror."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from okrsync.errors import ConnectorError, QueryError, QuotaExhaustedError, TargetNotFoundError
from okrsync.sandbox import SandboxServer
from okrsync.sdk.budget import HeaderObserver
from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, RetryPolicy
from okrsync.sdk.http_connector import HttpSink, HttpSource
from okrsync.sdk.models import CycleWindow, KeyResultUpdate, PushResult, Query, Reading, Status

CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
FRESH = "fresh-token"
SPENT = ErrorRule(ErrorAction.FAIL, QuotaExhaustedError, "the daily allowance is spent")


class ThingsConnection(ConnectionConfig):
    type: Literal["things"] = "things"
    base_url: str
    token: SecretStr
    max_retries: int = 1


class ThingsQuery(QuerySpec):
    path: str = "/count"


class ThingsMirror(MirrorSpec):
    board: str


def things_app() -> Starlette:
    """``/count`` wants the fresh token; ``/spent`` says so in a 200; ``/held`` sends a header
    of the vendor's own saying the window is empty; ``/cards`` does not exist."""

    async def count(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {FRESH}":
            return JSONResponse({"error": "expired"}, status_code=401)
        return JSONResponse({"count": 7})

    async def spent(request: Request) -> JSONResponse:
        return JSONResponse({"error": "allowance spent"})

    async def held(request: Request) -> JSONResponse:
        return JSONResponse({"count": 1}, headers={"x-things-left": "0"})

    async def cards(request: Request) -> JSONResponse:
        return JSONResponse({"error": "no such board"}, status_code=404)

    return Starlette(
        routes=[
            Route("/count", count),
            Route("/spent", spent),
            Route("/held", held),
            Route("/cards", cards, methods=["POST"]),
        ]
    )


def spent_in_body(response: httpx.Response) -> ErrorRule | None:
    body = response.json()
    return SPENT if body.get("error") == "allowance spent" else None


def things_left(headers: httpx.Headers) -> float | None:
    return 120.0 if headers.get("x-things-left") == "0" else None


class ThingsSource(HttpSource[ThingsConnection, ThingsQuery]):
    query_model = ThingsQuery
    initial_backoff = 0.01
    max_backoff = 0.02
    classify = spent_in_body

    def __init__(self, name: str, config: ThingsConnection) -> None:
        super().__init__(name, config)
        self.token = config.token.get_secret_value()
        self.refreshes = 0

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def credentials_refresher(self) -> Callable[[], Awaitable[None]] | None:
        return self.refresh

    async def refresh(self) -> None:
        self.refreshes += 1
        self.client.headers["Authorization"] = f"Bearer {FRESH}"

    def budget_observers(self) -> Sequence[HeaderObserver]:
        return [things_left]

    async def fetch_one(self, query: Query[ThingsQuery]) -> Reading:
        body = await self.client.get_json(query.spec.path, subject=query.subject)
        return Reading(
            key=query.key,
            value=Decimal(body["count"]),
            query_text=query.spec.path,
            fetched_at=datetime.now(UTC),
            raw_digest="",
        )


class ThingsSink(HttpSink[ThingsConnection, ThingsMirror]):
    mirror_model = ThingsMirror

    def describe(self, mirror: ThingsMirror) -> str:
        return f"board {mirror.board}"

    async def push_to(
        self, update: KeyResultUpdate, mirror: ThingsMirror, previous_ref: str | None, subject: str
    ) -> PushResult:
        await self.client.request_json("POST", "/cards", json={"board": mirror.board})
        return PushResult(ref="never")


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(things_app(), name="things") as running:
        yield running


def connection(server: SandboxServer) -> ThingsConnection:
    return ThingsConnection(base_url=server.url, token=SecretStr("stale-token"))


def ask(path: str) -> Query[ThingsQuery]:
    spec = ThingsQuery(path=path)
    return Query(Query.make_key("things", spec, CYCLE), "things", ("things",), spec, CYCLE)


async def read_once(source: ThingsSource, path: str) -> Reading:
    """One reading, then the connection closed (its counts and budget stay readable)."""
    try:
        return await source.fetch_one(ask(path))
    finally:
        await source.aclose()


async def test_the_refresher_renews_an_expired_token_once_and_the_request_succeeds(
    server: SandboxServer,
) -> None:
    source = ThingsSource("things", connection(server))
    reading = await read_once(source, "/count")
    assert reading.value == Decimal(7)
    assert source.refreshes == 1
    assert source.api_calls == 2  # the 401, then the same request with the new token


async def test_without_a_refresher_the_401_fails_at_once(server: SandboxServer) -> None:
    class NoRefresh(ThingsSource):
        def credentials_refresher(self) -> Callable[[], Awaitable[None]] | None:
            return None

    source = NoRefresh("things", connection(server))
    with pytest.raises(ConnectorError, match="credentials were rejected"):
        await read_once(source, "/count")
    assert source.refreshes == 0
    assert source.api_calls == 1


async def test_classify_turns_a_200_error_body_into_the_vendors_rule(
    server: SandboxServer,
) -> None:
    source = ThingsSource("things", connection(server))
    with pytest.raises(QuotaExhaustedError, match="allowance is spent"):
        await read_once(source, "/spent")
    assert source.api_calls == 1  # a FAIL rule: not retried


async def test_a_classifier_may_act_on_its_own_connection(server: SandboxServer) -> None:
    class Holding(ThingsSource):
        """A verdict that holds this connection's budget, as a 429 naming its window does."""

        def classifier(self) -> Callable[[httpx.Response], ErrorRule | None]:
            return self.hold_when_spent

        def hold_when_spent(self, response: httpx.Response) -> ErrorRule | None:
            rule = spent_in_body(response)
            if rule is not None:
                self.client.budget.hold_until(60.0)
            return rule

    source = Holding("things", connection(server))
    with pytest.raises(QuotaExhaustedError, match="allowance is spent"):
        await read_once(source, "/spent")
    assert 50.0 < source.client.budget.held_for() <= 60.0


async def test_error_rules_may_depend_on_the_connection(server: SandboxServer) -> None:
    class Worded(ThingsSource):
        def error_rules(self) -> Mapping[int, ErrorRule]:
            words = f"{self.config.base_url} has no such listing"
            return {**DEFAULT_ERROR_TABLE, 405: ErrorRule(ErrorAction.FAIL, QueryError, words)}

    source = Worded("things", connection(server))
    with pytest.raises(QueryError, match=f"{server.url} has no such listing"):
        await read_once(source, "/cards")  # a GET where only POST is routed
    assert source.api_calls == 1


async def test_a_second_client_shares_the_budget_with_its_own_retries(
    server: SandboxServer,
) -> None:
    source = ThingsSource("things", connection(server))
    once = source.make_client(retry=RetryPolicy(max_attempts=1), budget=source.client.budget)
    try:
        await once.get_json("/held")  # the vendor's header, seen through the second client
    finally:
        await once.aclose()
        await source.aclose()
    assert once.budget is source.client.budget and once.retry.max_attempts == 1
    assert source.client.retry.max_attempts == 2  # the connection's max_retries: 1
    assert 100.0 < source.client.budget.held_for() <= 120.0


async def test_the_budget_reads_the_vendors_own_header_through_budget_observers(
    server: SandboxServer,
) -> None:
    class Blind(ThingsSource):
        def budget_observers(self) -> Sequence[HeaderObserver]:
            return ()

    source, blind = ThingsSource("things", connection(server)), Blind("things", connection(server))
    await read_once(source, "/held")
    await read_once(blind, "/held")
    assert 100.0 < source.client.budget.held_for() <= 120.0
    assert blind.client.budget.held_for() == 0.0  # without the observer the header means nothing


UPDATE = KeyResultUpdate(
    key_result_id="kr-1",
    key_result_title="Ship it",
    objective_id="o-1",
    objective_title="Grow",
    cycle_id=CYCLE.id,
    kind="metric",
    value=Decimal(1),
    target=Decimal(2),
    start=None,
    unit=None,
    progress=None,
    progress_display=None,
    status=Status.NO_DATA,
    observed_at=datetime(2026, 12, 1, tzinfo=UTC),
    idempotency_key="kr-1:1",
)


async def push_failure(sink: ThingsSink) -> TargetNotFoundError:
    """The error a push to the board that does not exist raises (the sink closed after)."""
    try:
        with pytest.raises(TargetNotFoundError) as caught:
            await sink.push(UPDATE, ThingsMirror(board="roadmap"), None)
    finally:
        await sink.aclose()
    return caught.value


async def test_a_sinks_error_names_the_connection_and_the_mirror(server: SandboxServer) -> None:
    failed = await push_failure(ThingsSink("things", connection(server)))
    assert failed.connection == "things"
    assert failed.subject == "mirror of key result 'kr-1' (board roadmap)"


async def test_a_sink_may_name_its_mirror_in_the_vendors_terms(server: SandboxServer) -> None:
    class NamedSink(ThingsSink):
        def mirror_name(self, mirror: ThingsMirror) -> str:
            return f"#{mirror.board}"

    failed = await push_failure(NamedSink("things", connection(server)))
    assert failed.subject == "mirror #roadmap of key result 'kr-1'"
