"""The Pipedrive source against the sandbox Pipedrive company on a loopback socket.

Expected numbers are computed here, with Decimal, straight from the fake's deal records
(``app.state.data.deals``), never from its HTTP answers; vendor misbehaviour comes from the
sandbox's fault injection, and what the source sent is read back from the request log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest
from pydantic import ValidationError

from connectors.pipedrive import (
    PipedriveConnection,
    PipedriveQuery,
    PipedriveSource,
    connector,
    pipedrive_app,
)
from connectors.pipedrive.fake import FILTERS, RATES, FakeDeal, PipedriveData
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

TOKEN = "pd-7Qm2+x/9zK4e"  # '+' and '/' change when URL-encoded: both spellings must be redacted
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
CENT = Decimal("0.01")
WON_Q4: dict[str, Any] = {"status": "won", "window": {"field": "won_time"}}


class FastSource(PipedriveSource):
    """The real source with retries that do not make the suite slow."""

    initial_backoff = 0.01
    max_backoff = 0.02
    rate_limit_backoff = 0.01


@dataclass
class Fake:
    server: SandboxServer
    data: PipedriveData

    @property
    def url(self) -> str:
        return self.server.url

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))

    def queries(self) -> list[dict[str, list[str]]]:
        return [parse_qs(r.query) for r in self.server.requests]


@pytest.fixture
def fake() -> Iterator[Fake]:
    app = pipedrive_app(token=TOKEN, anchor=ANCHOR)
    with SandboxServer(app, name="pipedrive") as server:
        yield Fake(server, app.state.data)


def make_source(fake: Fake, token: str = TOKEN, **connection: Any) -> PipedriveSource:
    config = PipedriveConnection.model_validate(
        {"url": fake.url, "api_token": token, "max_retries": 2, **connection}
    )
    return FastSource("pipedrive", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[PipedriveSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(metric: str = "won_q4", **spec: Any) -> Query[PipedriveQuery]:
    model = PipedriveQuery.model_validate(spec)
    return Query(Query.make_key("pipedrive", model, CYCLE), "pipedrive", (metric,), model, CYCLE)


# --- the expected numbers, from the fake's records ---------------------------------------------


def live(data: PipedriveData) -> list[FakeDeal]:
    return [d for d in data.deals if d.status != "deleted"]


def in_cycle(when: datetime | None) -> bool:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    return when is not None and start <= when < start + timedelta(days=92)


def total(deals: Iterable[FakeDeal]) -> Decimal:
    return sum((d.value for d in deals), Decimal(0))


def converted(deals: Iterable[FakeDeal]) -> Decimal:
    """Per currency group, converted into EUR and rounded to cents, then added up."""
    groups: dict[str, Decimal] = {}
    for deal in deals:
        groups[deal.currency] = groups.get(deal.currency, Decimal(0)) + deal.value
    return sum(
        ((value * RATES[cur]).quantize(CENT, ROUND_HALF_UP) for cur, value in groups.items()),
        Decimal(0),
    )


def won_q4(data: PipedriveData) -> list[FakeDeal]:
    return [d for d in data.deals if d.status == "won" and in_cycle(d.won_time)]


# --- the summary: one call ---------------------------------------------------------------------


async def test_summary_counts_and_converted_value(fake: Fake, source: PipedriveSource) -> None:
    won = [d for d in live(fake.data) if d.status == "won"]
    assert len({d.currency for d in won}) > 1  # the converted total really converts
    count = await source.fetch_one(query("won_count", status="won"))
    value = await source.fetch_one(query("won_value", status="won", measure="value"))
    assert count.value == len(won)
    assert value.value == converted(won) and value.value != total(won)
    assert count.api_calls == 1 and source.api_calls == 2
    assert value.query_text == (
        "GET /api/v1/deals/summary?status=won → data.total_currency_converted_value"
    )
    request = fake.server.requests[0]
    assert request.path == "/api/v1/deals/summary" and request.query == "status=won"
    assert request.headers["x-api-token"] == TOKEN


async def test_summary_in_one_currency(fake: Fake, source: PipedriveSource) -> None:
    open_deals = [d for d in live(fake.data) if d.status == "open"]
    eur = await source.fetch_one(query(status="open", measure="value", currency="eur"))
    usd = await source.fetch_one(query(status="open", currency="USD"))
    chf = await source.fetch_one(query(status="open", measure="value", currency="CHF"))
    assert eur.value == total(d for d in open_deals if d.currency == "EUR")
    assert usd.value == len([d for d in open_deals if d.currency == "USD"])
    assert chf.value == 0  # no deal in that currency is a real zero
    assert eur.query_text.endswith("→ data.values_total.EUR.value")


@pytest.mark.parametrize(
    ("spec", "keep"),
    [
        ({"pipeline_id": 2}, lambda d: d.pipeline_id == 2),
        ({"stage_id": 3, "status": "open"}, lambda d: d.stage_id == 3 and d.status == "open"),
        ({"owner_id": 103, "status": "lost"}, lambda d: d.owner_id == 103 and d.status == "lost"),
        ({"filter_id": 7}, FILTERS[7][1]),
    ],
)
async def test_summary_filters(fake: Fake, source: PipedriveSource, spec: Any, keep: Any) -> None:
    reading = await source.fetch_one(query(**spec))
    expected = [d for d in live(fake.data) if keep(d)]
    assert expected and reading.value == len(expected)
    sent = fake.queries()[0]
    if "owner_id" in spec:
        assert sent["user_id"] == [str(spec["owner_id"])]  # v1 calls the owner user_id


# --- listing: v2 cursor pages ------------------------------------------------------------------


async def test_won_this_cycle_pages_through_v2(fake: Fake) -> None:
    source = make_source(fake, page_size=10)
    try:
        reading = await source.fetch_one(query(**WON_Q4, measure="value", currency="EUR"))
    finally:
        await source.aclose()
    won = won_q4(fake.data)
    assert reading.value == total(d for d in won if d.currency == "EUR") > 0
    # updated_since keeps every deal won in the cycle (updated when it was won) and no older one
    listed = [
        d
        for d in fake.data.deals
        if d.status == "won" and d.update_time >= datetime(2026, 10, 1, tzinfo=UTC)
    ]
    pages = -(-len(listed) // 10)
    assert pages >= 3 and reading.api_calls == pages == len(fake.server.requests)
    first, second = fake.queries()[:2]
    assert all(r.path == "/api/v2/deals" for r in fake.server.requests)
    assert first == {"status": ["won"], "updated_since": ["2026-10-01T00:00:00Z"], "limit": ["10"]}
    assert second["cursor"] and second["updated_since"] == first["updated_since"]
    assert reading.query_text == (
        "GET /api/v2/deals?status=won&updated_since={cycle_start} → sum(value) where "
        "won_time in {cycle_start}..{cycle_end} and currency = EUR over pages"
    )


async def test_metrics_sharing_a_listing_share_its_pages(fake: Fake) -> None:
    source = make_source(fake, page_size=50)
    try:
        readings = await source.fetch(
            [
                query("won_deals", **WON_Q4),
                query("won_eur", **WON_Q4, measure="value", currency="EUR"),
                query("won_gbp", **WON_Q4, measure="value", currency="GBP"),
                query("open_deals", status="open"),
            ]
        )
    finally:
        await source.aclose()
    won = won_q4(fake.data)
    assert [r.value for r in readings] == [
        len(won),
        total(d for d in won if d.currency == "EUR"),
        total(d for d in won if d.currency == "GBP"),
        len([d for d in live(fake.data) if d.status == "open"]),
    ]
    listing = [r for r in fake.server.requests if r.path == "/api/v2/deals"]
    assert len(listing) == readings[0].api_calls  # one pass for the three won metrics
    assert len(fake.server.requests) == len(listing) + 1


async def test_a_sum_across_currencies_is_refused(fake: Fake, source: PipedriveSource) -> None:
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query(**WON_Q4, measure="value"))
    assert str(caught.value).startswith("connection 'pipedrive', metric 'won_q4': ")
    assert "several currencies (EUR, GBP, USD); set currency:" in str(caught.value)


async def test_windows_on_other_fields_and_explicit_dates(
    fake: Fake, source: PipedriveSource
) -> None:
    added = await source.fetch_one(
        query(window={"field": "add_time", "start": "2026-11-01", "end": "{cycle_end}"})
    )
    lost = await source.fetch_one(query(window={"field": "lost_time"}, pipeline_id=1))
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert added.value == len([d for d in live(fake.data) if d.add_time >= since])
    lost_q4 = [d for d in fake.data.deals if d.status == "lost" and in_cycle(d.lost_time)]
    assert lost.value == len([d for d in lost_q4 if d.pipeline_id == 1]) > 0
    assert fake.queries()[1]["status"] == ["lost"]  # implied by the lost_time window


async def test_filter_with_other_narrowing_is_listed_and_anded(
    fake: Fake, source: PipedriveSource
) -> None:
    reading = await source.fetch_one(query(filter_id=8, status="won", pipeline_id=1))
    expected = [
        d for d in live(fake.data) if FILTERS[8][1](d) and d.status == "won" and d.pipeline_id == 1
    ]
    assert reading.value == len(expected) > 0
    assert fake.server.requests[0].path == "/api/v2/deals"  # v2 ignores the rest with filter_id


async def test_values_move_when_deals_are_won(fake: Fake, source: PipedriveSource) -> None:
    spec = query(**WON_Q4, measure="value", currency="EUR")
    before = (await source.fetch_one(spec)).value
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    fake.data.add_deal(value=Decimal("1234.56"), status="won", won_time=when, update_time=when)
    after = (await source.fetch_one(spec)).value
    assert before is not None and after == before + Decimal("1234.56")


# --- vendor trouble ----------------------------------------------------------------------------

OVER_LIMIT = json.dumps({"success": False, "error": "Request over limit", "errorCode": 429})


async def test_rate_limit_honours_retry_after(fake: Fake, source: PipedriveSource) -> None:
    fake.fault(FaultKind.STATUS, status=429, retry_after="0.3", body=OVER_LIMIT)
    started = time.monotonic()
    reading = await source.fetch_one(query(status="won"))
    assert time.monotonic() - started >= 0.3
    assert reading.value == len([d for d in live(fake.data) if d.status == "won"])
    assert len(fake.server.requests) == 2 and source.api_calls == 2


async def test_rate_limit_on_a_later_page(fake: Fake) -> None:
    source = make_source(fake, page_size=40)
    fake.fault(FaultKind.STATUS, status=429, retry_after="0.1", body=OVER_LIMIT, path="/api/v2")
    fake.fault(FaultKind.STATUS, status=502, body="<html><title>Bad gateway</title></html>")
    try:
        first = await source.fetch_one(query(**WON_Q4))  # 429 on page 1, then fine
        second = await source.fetch_one(query(**WON_Q4))  # 502 on page 1, then fine
    finally:
        await source.aclose()
    assert first.value == second.value == len(won_q4(fake.data))


async def test_unavailable_then_success(fake: Fake, source: PipedriveSource) -> None:
    body = json.dumps({"success": False, "error": "Service unavailable", "errorCode": 503})
    fake.fault(FaultKind.STATUS, status=503, body=body)
    reading = await source.fetch_one(query(status="lost"))
    assert reading.value == len([d for d in live(fake.data) if d.status == "lost"])
    assert len(fake.server.requests) == 2


async def test_server_errors_give_up_with_the_vendors_words(
    fake: Fake, source: PipedriveSource
) -> None:
    body = json.dumps({"success": False, "error": "Internal server error", "errorCode": 500})
    fake.fault(FaultKind.STATUS, status=500, body=body, times=3)
    with pytest.raises(ConnectorError) as caught:
        await source.fetch_one(query(status="lost"))
    assert "Internal server error" in str(caught.value)
    assert "gave up after 3 attempts" in str(caught.value)


@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_wrong_token_is_a_credentials_error(fake: Fake, token_in: str) -> None:
    wrong = "wrong+tok/31415926"
    source = make_source(fake, token=wrong, token_in=token_in)
    try:
        with pytest.raises(CredentialsError) as caught:
            await source.fetch_one(query(status="won"))
    finally:
        await source.aclose()
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert message == (
        "connection 'pipedrive', metric 'won_q4': credentials were rejected "
        "(HTTP 401: unauthorized access)"
    )
    assert len(fake.server.requests) == 1


async def test_token_as_query_parameter(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    source = make_source(fake, token_in="query")
    try:
        with caplog.at_level(logging.DEBUG):
            reading = await source.fetch_one(query(status="won"))
    finally:
        await source.aclose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "api_token=***" in logged  # httpx's request line, with the token masked
    assert TOKEN not in logged and quote(TOKEN, safe="") not in logged
    assert reading.value == len([d for d in live(fake.data) if d.status == "won"])
    (request,) = fake.server.requests
    assert parse_qs(request.query)["api_token"] == [TOKEN]
    assert "x-api-token" not in request.headers
    assert TOKEN not in reading.query_text


@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_the_token_never_appears_in_errors(fake: Fake, token_in: str) -> None:
    source = make_source(fake, token_in=token_in)
    encoded = quote(TOKEN, safe="")
    echo = json.dumps({"success": False, "error": f"token {TOKEN} ({encoded}) may not read"})
    faults = [
        Fault(kind=FaultKind.STATUS, status=400, body=echo),
        Fault(kind=FaultKind.STATUS, status=403, body=echo),
        Fault(kind=FaultKind.HTML, body=f"<html><title>Denied {encoded}</title></html>"),
        Fault(kind=FaultKind.MALFORMED, body=f'{{"url": "/api/v1/deals?api_token={encoded}"'),
        Fault(
            kind=FaultKind.STATUS, status=200, body=json.dumps({"success": False, "error": TOKEN})
        ),
        Fault(kind=FaultKind.STATUS, status=500, body=echo, times=3),
        Fault(kind=FaultKind.STATUS, status=429, body=echo, retry_after="9999"),
    ]
    messages: list[str] = []
    try:
        for fault in faults:
            fake.server.faults.add(fault)
            reading = (await source.fetch([query(status="won")]))[0]
            assert reading.error is not None and reading.value is None
            messages.append(str(reading.error))
    finally:
        await source.aclose()
    assert all(TOKEN not in m and encoded not in m for m in messages), messages
    assert "***" in messages[0] and "***" in messages[3]
    assert all(m.startswith("connection 'pipedrive', metric 'won_q4': ") for m in messages)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (FaultKind.MALFORMED, "not valid JSON"),
        (FaultKind.HTML, "HTML page"),
        (FaultKind.EMPTY, "empty body"),
    ],
)
async def test_unreadable_answers(
    fake: Fake, source: PipedriveSource, kind: FaultKind, words: str
) -> None:
    fake.fault(kind)
    with pytest.raises(VendorResponseError) as caught:
        await source.fetch_one(query(status="won"))
    assert words in str(caught.value)
    assert str(caught.value).startswith("connection 'pipedrive', metric 'won_q4': ")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"success": False, "error": "Something odd"}, "success=false: Something odd"),
        ({"success": True, "data": "nope"}, "'data' should be an object"),
        ({"success": True, "data": {"total_count": "12"}}, "total_count should be a number"),
        ({"success": True}, "has no 'data'"),
    ],
)
async def test_wrong_shapes(
    fake: Fake, source: PipedriveSource, body: dict[str, Any], words: str
) -> None:
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(body))
    with pytest.raises(VendorResponseError, match=words):
        await source.fetch_one(query(status="won"))


async def test_bad_request_is_a_query_error(fake: Fake, source: PipedriveSource) -> None:
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query(filter_id=999))
    assert str(caught.value) == (
        "connection 'pipedrive', metric 'won_q4': the vendor rejected the request "
        "(HTTP 400: Filter not found)"
    )


async def test_pagination_loop_is_detected(fake: Fake, source: PipedriveSource) -> None:
    page = {"success": True, "data": [], "additional_data": {"next_cursor": "c-1"}}
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(page), times=-1)
    with pytest.raises(VendorResponseError, match="pagination loop"):
        await source.fetch_one(query(**WON_Q4))
    assert len(fake.server.requests) == 2


async def test_more_pages_than_allowed(fake: Fake) -> None:
    source = make_source(fake, page_size=10, max_pages=2)
    try:
        with pytest.raises(VendorResponseError, match=r"more than max_pages \(2\)"):
            await source.fetch_one(query(**WON_Q4))
    finally:
        await source.aclose()
    assert len(fake.server.requests) == 2


async def test_spent_daily_budget_pauses_the_connection(fake: Fake) -> None:
    fake.data.daily_limit = fake.data.daily_used + 20  # one summary call left
    source = make_source(fake)
    try:
        reading = await source.fetch_one(query(status="won"))  # the last tokens of the day
        assert reading.ok
        with pytest.raises(QuotaExhaustedError) as caught:
            await source.fetch_one(query(status="lost"))
    finally:
        await source.aclose()
    # The last answer said 0 tokens were left: the budget held the connection until midnight,
    # so no request was wasted on a certain 429.
    assert len(fake.server.requests) == 1
    assert caught.value.resume_at is not None and caught.value.resume_at > time.time()
    assert "pausing the connection" in str(caught.value)


async def test_daily_budget_429_is_not_retried(fake: Fake, source: PipedriveSource) -> None:
    body = json.dumps(
        {"success": False, "error": "daily request budget exceeded", "errorCode": 429}
    )
    fake.fault(FaultKind.STATUS, status=429, body=body, retry_after="3939")
    with pytest.raises(QuotaExhaustedError) as caught:
        await source.fetch_one(query(status="won"))
    assert "daily Pipedrive API token budget is spent" in str(caught.value)
    assert caught.value.resume_at is not None and len(fake.server.requests) == 1


async def test_rate_limit_headers_slow_the_connection_down(fake: Fake) -> None:
    fake.data.burst_limit = 2
    source = make_source(fake)
    try:
        started = time.monotonic()
        for status in ("won", "lost", "open"):
            await source.fetch_one(query(status=status))
    finally:
        await source.aclose()
    # The second answer said 0 left with a reset in 1-2 s: the third request waited for it
    # instead of drawing a 429.
    assert time.monotonic() - started >= 0.9
    assert len(fake.server.requests) == 3


# --- the fake itself speaks Pipedrive ---------------------------------------------------------


async def test_fake_v1_listing_pages_with_start_and_limit(fake: Fake) -> None:
    headers = {"x-api-token": TOKEN}
    seen: list[int] = []
    start: int | None = 0
    async with httpx.AsyncClient(base_url=fake.url, headers=headers) as client:
        while start is not None:
            params: dict[str, Any] = {"status": "won", "sort": "won_time DESC", "start": start}
            answer = await client.get("/api/v1/deals", params={**params, "limit": 100})
            body = answer.json()
            assert answer.status_code == 200 and body["success"] is True
            assert "x-ratelimit-remaining" in answer.headers
            seen.extend(d["id"] for d in body["data"] or [])
            pagination = body["additional_data"]["pagination"]
            more = pagination["more_items_in_collection"]
            start = pagination["next_start"] if more else None
            assert ("next_start" in pagination) == more
        unauthorized = await client.get("/api/v2/deals", headers={"x-api-token": "nope"})
    won = [d for d in fake.data.deals if d.status == "won"]
    assert sorted(seen) == sorted(d.id for d in won) and len(won) > 100
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {
        "success": False,
        "error": "unauthorized access",
        "errorCode": 401,
        "error_info": "Please check developers.pipedrive.com for more information about "
        "Pipedrive API.",
    }


async def test_fake_rejects_what_pipedrive_rejects(fake: Fake) -> None:
    async with httpx.AsyncClient(base_url=fake.url, params={"api_token": TOKEN}) as client:
        too_many = await client.get("/api/v2/deals", params={"limit": 501})
        bad_status = await client.get("/api/v2/deals", params={"status": "closed"})
    for answer in (too_many, bad_status):
        body = answer.json()
        assert answer.status_code == 400
        assert body["success"] is False and body["data"] is None and "error_info" in body


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"status": "open", "window": {"field": "won_time"}}, "only matches won deals"),
        ({"window": {"start": "last monday"}}, "neither a date"),
        ({"window": {"start": "2026-12-01", "end": "2026-11-01"}}, "is after window.end"),
        ({"currency": "euro"}, "3-letter ISO code"),
        ({"measure": "avg"}, "'count' or 'value'"),
        ({"owner": 3}, "Extra inputs are not permitted"),
    ],
)
def test_query_validation(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        PipedriveQuery.model_validate(spec)


def test_connection_model_and_descriptor() -> None:
    config = PipedriveConnection.model_validate(
        {"type": "pipedrive", "company_domain": "Acme.pipedrive.com", "api_token": "tok-secret-9"}
    )
    assert config.base_url() == "https://acme.pipedrive.com"
    assert config.secret_values() == ["tok-secret-9"] and "tok-secret-9" not in repr(config)
    with pytest.raises(ValidationError, match="exactly one of company_domain"):
        PipedriveConnection.model_validate({"api_token": "x"})
    with pytest.raises(ValidationError, match="exactly one of company_domain"):
        PipedriveConnection.model_validate(
            {"api_token": "x", "company_domain": "a", "url": "https://b"}
        )
    with pytest.raises(ValidationError, match="subdomain"):
        PipedriveConnection.model_validate({"api_token": "x", "company_domain": "a b"})
    with pytest.raises(ValidationError, match="less than or equal to 500"):
        PipedriveConnection.model_validate({"api_token": "x", "url": "http://h", "page_size": 501})
    assert connector.type == "pipedrive" and connector.query_model is PipedriveQuery
    assert connector.mirror_model is None and connector.fake is not None
    assert connector.fake().state.data.deals
