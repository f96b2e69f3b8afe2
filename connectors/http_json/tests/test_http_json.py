"""The http_json source against the sandbox analytics API on a loopback socket.

Expected numbers are computed from the fake's own records (``AnalyticsData``) with Decimal, so a
sum that lost a cent or a page shows up; vendor misbehaviour comes from the sandbox's fault
injection, and what the source *sent* is read back from the sandbox's request log.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import ValidationError

from connectors.http_json import HttpJsonConnection, HttpJsonQuery, HttpJsonSource, connector
from connectors.http_json.fake import AnalyticsData, DealFilter, analytics_app
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    VendorResponseError,
)
from okrsync.plugins import load_registry
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

TOKEN = "sbx-tok-4f9c2a7e81d3"  # the fake's token in these tests
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
Q4 = DealFilter(closed_after=CYCLE.start, closed_before=CYCLE.end)
CURSOR = {"type": "cursor", "cursor_param": "cursor", "cursor_path": "$.next_cursor"}


class FastSource(HttpJsonSource):
    """The real source with retries that do not make the suite slow."""

    initial_backoff = 0.01
    max_backoff = 0.02
    rate_limit_backoff = 0.01


@dataclass
class Fake:
    server: SandboxServer
    data: AnalyticsData

    @property
    def url(self) -> str:
        return self.server.url

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))


@pytest.fixture
def fake() -> Iterator[Fake]:
    app = analytics_app(token=TOKEN, anchor=ANCHOR)
    with SandboxServer(app, name="analytics") as server:
        yield Fake(server, app.state.data)


def make_source(fake: Fake, token: str = TOKEN, **connection: Any) -> HttpJsonSource:
    config = HttpJsonConnection.model_validate(
        {
            "type": "http_json",
            "url": fake.url,
            "auth": {"type": "bearer", "token": token},
            "max_retries": 2,
            **connection,
        }
    )
    return FastSource("crm", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[HttpJsonSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(metric: str = "won_total", **spec: Any) -> Query[HttpJsonQuery]:
    model = HttpJsonQuery.model_validate(spec)
    return Query(Query.make_key("crm", model, CYCLE), "crm", (metric,), model, CYCLE)


def total(deals: list[Any]) -> Decimal:
    return sum((d.amount for d in deals), Decimal(0))


def won_q4(data: AnalyticsData) -> list[Any]:
    return data.deals(DealFilter("won", CYCLE.start, CYCLE.end))


SUMMARY: dict[str, Any] = {
    "request_path": "/v1/deals/summary",
    "params": {"status": "won", "closed_after": "{cycle_start}", "closed_before": "{cycle_end}"},
}


# --- values ----------------------------------------------------------------------------------


async def test_first_match_is_the_value(fake: Fake, source: HttpJsonSource) -> None:
    reading = await source.fetch_one(query(**SUMMARY, json_path="$.total"))
    expected = total(won_q4(fake.data))
    assert expected > 0 and reading.value == expected
    assert reading.api_calls == 1 and source.api_calls == 1
    assert reading.raw_digest.startswith("sha256:")
    assert reading.query_text == (
        "GET /v1/deals/summary?status=won&closed_after={cycle_start}&closed_before={cycle_end}"
        " → $.total"
    )
    count = await source.fetch_one(query(**SUMMARY, json_path="$.count"))
    assert count.value == len(won_q4(fake.data))


async def test_cursor_pagination_sums_exactly(fake: Fake, source: HttpJsonSource) -> None:
    spec: dict[str, Any] = {
        "request_path": "/v1/deals",
        "params": {**SUMMARY["params"], "limit": 10},
        "json_path": "$.data[*].amount",
        "aggregate": "sum",
        "pagination": CURSOR,
    }
    reading = await source.fetch_one(query(**spec))
    won = won_q4(fake.data)
    pages = -(-len(won) // 10)
    assert pages >= 3
    assert reading.value == total(won)
    assert reading.api_calls == pages
    requests = fake.server.requests
    assert len(requests) == pages
    first, second = (parse_qs(r.query) for r in requests[:2])
    assert first["closed_after"] == ["2026-10-01"] and first["closed_before"] == ["2026-12-31"]
    assert "cursor" not in first and second["cursor"] and second["status"] == ["won"]
    assert reading.query_text.endswith("→ $.data[*].amount (sum over pages)")


async def test_post_search_puts_placeholders_and_cursor_in_the_body(
    fake: Fake, source: HttpJsonSource
) -> None:
    body = {"status": "won", "closed_after": "{cycle_start}", "closed_before": "{cycle_end}"}
    reading = await source.fetch_one(
        query(
            request_path="/v1/deals/search",
            method="POST",
            body={**body, "limit": 10},
            json_path="$.data[*].amount",
            aggregate="sum",
            pagination=CURSOR,
        )
    )
    assert reading.value == total(won_q4(fake.data))
    sent = [r.json_body() for r in fake.server.requests]
    assert sent[0] == {
        "status": "won",
        "closed_after": "2026-10-01",
        "closed_before": "2026-12-31",
        "limit": 10,
    }
    assert all(r.method == "POST" for r in fake.server.requests)
    assert "cursor" in sent[1] and sent[1]["closed_after"] == "2026-10-01"


async def test_a_numeric_cursor_goes_back_as_a_number_in_a_post_body(
    fake: Fake, source: HttpJsonSource
) -> None:
    for page in [{"data": [{"amount": 1}], "next_cursor": 20}, {"data": [{"amount": 2}]}]:
        fake.fault(FaultKind.STATUS, status=200, body=json.dumps(page))
    reading = await source.fetch_one(
        query(
            request_path="/v1/deals/search",
            method="POST",
            body={"limit": 1},
            json_path="$.data[*].amount",
            aggregate="sum",
            pagination=CURSOR,
        )
    )
    assert reading.value == 3
    sent = [r.json_body() for r in fake.server.requests]
    assert sent == [{"limit": 1}, {"limit": 1, "cursor": 20}]


async def test_cycle_placeholders_in_the_path(fake: Fake, source: HttpJsonSource) -> None:
    reading = await source.fetch_one(
        query(
            request_path="/v1/quarters/{cycle_id}/summary",
            params={"status": "won"},
            json_path="$.total",
        )
    )
    assert reading.value == total(won_q4(fake.data))
    (request,) = fake.server.requests
    assert request.path == "/v1/quarters/2026-Q4/summary" and request.query == "status=won"


async def test_page_pagination_stops_on_an_empty_page(fake: Fake, source: HttpJsonSource) -> None:
    reading = await source.fetch_one(
        query(
            request_path="/v1/accounts",
            params={"per_page": 25},
            json_path="$.accounts[*].arr",
            aggregate="sum",
            pagination={"type": "page", "page_param": "page", "items_path": "$.accounts"},
        )
    )
    assert reading.value == sum((a["arr"] for a in fake.data.accounts), Decimal(0))
    assert reading.api_calls == 4  # 25 + 25 + 10, then the empty page that ends it
    pages = [parse_qs(r.query)["page"] for r in fake.server.requests]
    assert pages == [["1"], ["2"], ["3"], ["4"]]


async def test_next_url_pagination_counts(fake: Fake, source: HttpJsonSource) -> None:
    reading = await source.fetch_one(
        query(
            request_path="/v1/tickets",
            params={"status": "open"},
            json_path="$.items[*]",
            aggregate="count",
            pagination={"type": "next_url", "next_path": "$.next"},
        )
    )
    expected = [t for t in fake.data.tickets if t["status"] == "open"]
    assert len(expected) > 10  # more than one page
    assert reading.value == len(expected)
    assert reading.api_calls == -(-len(expected) // 10)
    assert all(parse_qs(r.query)["status"] == ["open"] for r in fake.server.requests)


@pytest.mark.parametrize(
    ("aggregate", "reduce"),
    [
        ("min", min),
        ("max", max),
        ("avg", lambda xs: sum(xs, Decimal(0)) / len(xs)),
    ],
)
async def test_other_aggregates(
    fake: Fake, source: HttpJsonSource, aggregate: str, reduce: Any
) -> None:
    reading = await source.fetch_one(
        query(
            request_path="/v1/deals",
            params={"status": "lost", "limit": 100},
            json_path="$.data[*].amount",
            aggregate=aggregate,
            pagination=CURSOR,
        )
    )
    assert reading.value == reduce([d.amount for d in fake.data.deals(DealFilter("lost"))])


async def test_filters_and_numbers_sent_as_strings(fake: Fake, source: HttpJsonSource) -> None:
    reading = await source.fetch_one(
        query(
            request_path="/v1/deals",
            params={"status": "won", "closed_after": "2099-01-01"},
            json_path="$.data[?(@.owner == 'chen')].amount",
            aggregate="sum",
        )
    )
    assert reading.value == 0  # nothing won yet is zero, not an error
    fake.fault(FaultKind.STATUS, status=200, body='{"total": "1234.50"}')
    reading = await source.fetch_one(query(**SUMMARY, json_path="$.total"))
    assert reading.value == Decimal("1234.50")


async def test_values_move_when_deals_close(fake: Fake, source: HttpJsonSource) -> None:
    spec = query(**SUMMARY, json_path="$.total")
    before = (await source.fetch_one(spec)).value
    fake.data.add_deal("1000.25", closed_on=date(2026, 11, 2))
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = await client.post(
            f"{fake.url}/v1/deals", json={"amount": 99.5, "closed_on": "2026-12-01"}
        )
    assert created.status_code == 201 and created.json()["amount"] == 99.5
    after = (await source.fetch_one(spec)).value
    assert before is not None and after == before + Decimal("1099.75")


# --- vendor trouble ----------------------------------------------------------------------------


async def test_rate_limit_honours_retry_after(fake: Fake, source: HttpJsonSource) -> None:
    fake.fault(FaultKind.STATUS, status=429, retry_after="0.3", path="/summary")
    started = time.monotonic()
    reading = await source.fetch_one(query(**SUMMARY, json_path="$.count"))
    assert time.monotonic() - started >= 0.3
    assert reading.value == len(won_q4(fake.data))
    assert len(fake.server.requests) == 2 and source.api_calls == 2


async def test_unavailable_then_success(fake: Fake, source: HttpJsonSource) -> None:
    fake.fault(FaultKind.STATUS, status=503)
    reading = await source.fetch_one(query(**SUMMARY, json_path="$.count"))
    assert reading.value == len(won_q4(fake.data))
    assert len(fake.server.requests) == 2


async def test_wrong_token_is_a_credentials_error(fake: Fake) -> None:
    source = make_source(fake, token="not-the-token-31415")
    try:
        with pytest.raises(CredentialsError) as caught:
            await source.fetch_one(query(**SUMMARY, json_path="$.total"))
    finally:
        await source.aclose()
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert message.startswith("connection 'crm', metric 'won_total': ")
    assert "invalid" in message and "not-the-token-31415" not in message


async def test_basic_auth_is_sent_and_redacted(fake: Fake) -> None:
    source = make_source(fake, auth={"type": "basic", "username": "ops", "password": "pw-271828"})
    try:
        with pytest.raises(CredentialsError) as caught:
            await source.fetch_one(query(**SUMMARY, json_path="$.total"))
    finally:
        await source.aclose()
    encoded = base64.b64encode(b"ops:pw-271828").decode()
    assert fake.server.requests[0].headers["authorization"] == f"Basic {encoded}"
    assert encoded not in str(caught.value) and "pw-271828" not in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "words"),
    [(FaultKind.HTML, "HTML page"), (FaultKind.MALFORMED, "not valid JSON")],
)
async def test_unreadable_answers(
    fake: Fake, source: HttpJsonSource, kind: FaultKind, words: str
) -> None:
    fake.fault(kind)
    with pytest.raises(VendorResponseError) as caught:
        await source.fetch_one(query(**SUMMARY, json_path="$.total"))
    assert words in str(caught.value) and "connection 'crm'" in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "body"),
    [
        (
            {"request_path": "/v1/deals", "pagination": CURSOR},
            {"data": [{"amount": 1}], "next_cursor": "c-1"},
        ),
        (
            {"request_path": "/v1/tickets", "pagination": {"type": "next_url", "next_path": "$.n"}},
            {"data": [{"amount": 1}], "n": "/v1/tickets?page=2"},
        ),
        (
            {
                "request_path": "/v1/accounts",
                "pagination": {"type": "page", "items_path": "$.data"},
            },
            {"data": [{"amount": 1}]},
        ),
    ],
)
async def test_pagination_loops_are_detected(
    fake: Fake, source: HttpJsonSource, spec: dict[str, Any], body: dict[str, Any]
) -> None:
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(body), times=-1)
    with pytest.raises(VendorResponseError) as caught:
        await source.fetch_one(query(**spec, json_path="$.data[*].amount", aggregate="sum"))
    assert "pagination loop" in str(caught.value)
    assert len(fake.server.requests) <= 3


async def test_more_pages_than_allowed(fake: Fake, source: HttpJsonSource) -> None:
    with pytest.raises(VendorResponseError, match=r"more than max_pages \(3\)"):
        await source.fetch_one(
            query(
                request_path="/v1/deals",
                params={"limit": 10},
                json_path="$.data[*].amount",
                aggregate="sum",
                pagination=CURSOR,
                max_pages=3,
            )
        )
    assert len(fake.server.requests) == 3


async def test_next_url_to_another_host_is_refused(fake: Fake, source: HttpJsonSource) -> None:
    body = {"items": [1], "next": "http://collector.invalid/v1/tickets?page=2"}
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(body))
    spec = {"type": "next_url", "next_path": "$.next"}
    with pytest.raises(VendorResponseError, match="another host"):
        await source.fetch_one(
            query(
                request_path="/v1/tickets",
                json_path="$.items[*]",
                aggregate="count",
                pagination=spec,
            )
        )
    assert len(fake.server.requests) == 1


async def test_path_matching_nothing_names_path_and_metric(source: HttpJsonSource) -> None:
    with pytest.raises(VendorResponseError) as caught:
        await source.fetch_one(query(**SUMMARY, json_path="$.totl"))
    assert str(caught.value) == (
        "connection 'crm', metric 'won_total': $.totl matched nothing in the answer"
    )


async def test_non_numbers_are_refused(source: HttpJsonSource) -> None:
    with pytest.raises(VendorResponseError, match=r"\$\.data\[\*\]\.owner matched a non-number"):
        await source.fetch_one(
            query(request_path="/v1/deals", json_path="$.data[*].owner", aggregate="sum")
        )
    with pytest.raises(VendorResponseError, match=r"a list; add \[\*\]"):
        await source.fetch_one(query(request_path="/v1/deals", json_path="$.data"))


async def test_the_token_never_appears_in_errors(fake: Fake, source: HttpJsonSource) -> None:
    echo = json.dumps({"message": f"token {TOKEN} may not read deals"})
    faults = [
        Fault(kind=FaultKind.STATUS, status=400, body=echo),
        Fault(kind=FaultKind.HTML, body=f"<html><title>Denied {TOKEN}</title></html>"),
        Fault(kind=FaultKind.MALFORMED, body=f'{{"token": "{TOKEN}"'),
        Fault(kind=FaultKind.STATUS, status=200, body=json.dumps({"cursor_of": TOKEN})),
        Fault(kind=FaultKind.STATUS, status=500, body=echo, times=3),
    ]
    messages: list[str] = []
    for fault in faults:
        fake.server.faults.add(fault)
        reading = (await source.fetch([query(**SUMMARY, json_path="$.total")]))[0]
        assert reading.error is not None and reading.value is None
        messages.append(str(reading.error))
    assert isinstance(messages, list) and all(TOKEN not in m for m in messages)
    assert "***" in messages[0]
    assert all(m.startswith("connection 'crm', metric 'won_total'") for m in messages)


async def test_fetch_reports_errors_per_query(fake: Fake, source: HttpJsonSource) -> None:
    good = query("won", **SUMMARY, json_path="$.total")
    bad = query("missing", request_path="/v1/nothing", json_path="$.total")
    readings = await source.fetch([good, bad])
    assert readings[0].ok and readings[0].value == total(won_q4(fake.data))
    assert isinstance(readings[1].error, ConnectorError) and not readings[1].ok
    assert "metric 'missing'" in str(readings[1].error)


async def test_bad_request_is_a_query_error(source: HttpJsonSource) -> None:
    with pytest.raises(QueryError, match="limit must be between 1 and 100"):
        await source.fetch_one(
            query(request_path="/v1/deals", params={"limit": 500}, json_path="$.data[*].amount")
        )


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"json_path": "$.[["}, "not a valid JSONPath"),
        ({"json_path": " "}, "the JSONPath is empty"),
        ({"json_path": "$.x", "params": {"after": "{cycle.start}"}}, "unknown placeholder"),
        ({"json_path": "$.x", "body": {"a": 1}}, "a request body needs method: POST"),
        ({"json_path": "$.x", "request_path": "https://elsewhere/x"}, "appended"),
        (
            {"json_path": "$.x", "pagination": {"type": "cursor", "cursor_path": "$.[["}},
            "not a valid JSONPath",
        ),
        ({"json_path": "$.x", "pagination": {"type": "offset"}}, "does not match any"),
    ],
)
def test_query_validation(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        HttpJsonQuery.model_validate(spec)


def test_query_text_and_literal_braces() -> None:
    spec = HttpJsonQuery(
        request_path="/graphql",
        method="POST",
        body={"query": '{ deals(after: "{cycle_start}") { total } }'},
        json_path="$.data.deals.total",
    )
    assert spec.query_text() == (
        'POST /graphql {"query":"{ deals(after: \\"{cycle_start}\\") { total } }"}'
        " → $.data.deals.total"
    )


def test_connection_model_and_descriptor() -> None:
    config = HttpJsonConnection.model_validate(
        {
            "type": "http_json",
            "url": "https://api.example.com",
            "headers": {"X-Api-Key": "hdr-secret-1"},
            "auth": {"type": "bearer", "token": "tok-secret-2"},
        }
    )
    assert sorted(config.secret_values()) == ["hdr-secret-1", "tok-secret-2"]
    assert "tok-secret-2" not in repr(config)
    with pytest.raises(ValidationError):
        HttpJsonConnection.model_validate(
            {"type": "http_json", "url": "https://api.example.com", "auth": {"type": "x"}}
        )
    with pytest.raises(ValidationError, match="url must be an http"):
        HttpJsonConnection.model_validate({"type": "http_json", "url": "api.example.com"})
    assert load_registry().connectors["http_json"] is connector
    assert connector.query_model is HttpJsonQuery and connector.fake is not None
    assert connector.fake().state.data.anchor is not None


# --- one request, several metrics ------------------------------------------------------------

LISTING: dict[str, Any] = {"request_path": "/v1/deals", "params": {"limit": 100}}


async def test_forty_metrics_reading_one_answer_cost_one_request(
    fake: Fake, source: HttpJsonSource
) -> None:
    """40 metrics differing only in their JSONPath: one GET, each read at its own path."""
    queries = [query(f"deal{i}", **LISTING, json_path=f"$.data[{i}].amount") for i in range(40)]
    assert len({q.key for q in queries}) == 40  # 40 distinct questions for the planner
    assert len({source.batch_key(q.spec) for q in queries}) == 1  # one request
    assert len({source.request_key(q.spec) for q in queries}) == 1  # the scheduler aligns them
    readings = await source.fetch(queries)
    assert len(fake.server.requests) == 1 and source.api_calls == 1
    deals = fake.data.deals()[:40]
    assert [r.value for r in readings] == [d.amount for d in deals]
    assert [r.key for r in readings] == [q.key for q in queries]
    assert sum(r.api_calls for r in readings) == 1  # counted once, not once per metric
    assert len({r.raw_digest for r in readings}) == 1
    await source.fetch(queries)  # the next tick: one more request, not 40
    assert len(fake.server.requests) == 2


async def test_a_shared_request_reads_every_page_once_for_all_aggregates(
    fake: Fake, source: HttpJsonSource
) -> None:
    spec = {**SUMMARY, "request_path": "/v1/deals"}
    spec["params"] = {**SUMMARY["params"], "limit": 10}
    paged: dict[str, Any] = {**spec, "json_path": "$.data[*].amount", "pagination": CURSOR}
    won = won_q4(fake.data)
    queries = [
        query("won_first", **paged),  # done after the first page, alone
        query("won_sum", **paged, aggregate="sum"),
        query("won_count", **paged, aggregate="count"),
        query("won_max", **paged, aggregate="max"),
    ]
    readings = await source.fetch(queries)
    pages = -(-len(won) // 10)
    assert len(fake.server.requests) == pages
    assert [r.value for r in readings] == [
        won[0].amount,
        total(won),
        Decimal(len(won)),
        max(d.amount for d in won),
    ]


async def test_a_path_failing_fails_only_its_metric_and_a_request_failing_names_each(
    fake: Fake, source: HttpJsonSource
) -> None:
    good = query("good", **LISTING, json_path="$.data[0].amount")
    missing = query("missing", **LISTING, json_path="$.nothing")
    word = query("word", **LISTING, json_path="$.data[0].status")
    readings = await source.fetch([good, missing, word])
    assert len(fake.server.requests) == 1
    assert readings[0].ok and readings[0].value == fake.data.deals()[0].amount
    assert "metric 'missing'" in str(readings[1].error) and "matched nothing" in str(
        readings[1].error
    )
    assert "metric 'word'" in str(readings[2].error) and "non-number" in str(readings[2].error)
    fake.fault(FaultKind.STATUS, status=404, times=-1)
    failed = await source.fetch([good, missing])
    assert [
        str(r.error).startswith(f"connection 'crm', metric '{name}'")
        for r, name in zip(failed, ["good", "missing"], strict=True)
    ] == [True, True]


async def test_different_requests_and_cycles_are_not_merged(
    fake: Fake, source: HttpJsonSource
) -> None:
    won = query("won", **SUMMARY, json_path="$.total")
    lost = query("lost", **{**SUMMARY, "params": {"status": "lost"}}, json_path="$.total")
    spec = HttpJsonQuery.model_validate({**SUMMARY, "json_path": "$.count"})
    q3 = CycleWindow("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
    earlier = Query(Query.make_key("crm", spec, q3), "crm", ("won_q3",), spec, q3)
    readings = await source.fetch([won, lost, earlier])
    assert len(fake.server.requests) == 3 and all(r.ok for r in readings)
    assert source.batch_key(won.spec) != source.batch_key(lost.spec)
