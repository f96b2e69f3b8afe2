"""The HubSpot source against the fake portal on a loopback socket.

Expected numbers are computed from the fake's own records with Decimal; what the source sent is
read back from the sandbox's request log; vendor trouble comes from fault injection with
HubSpot's real error bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.hubspot import HubSpotConnection, HubSpotQuery, HubSpotSource, connector
from connectors.hubspot.fake import PIPELINES, CrmRecord, parse_time, to_ms
from connectors.hubspot.search import day_end_ms, day_start_ms
from connectors.hubspot.tests.conftest import (
    CYCLE,
    TOKEN,
    Fake,
    FastSource,
    make_config,
    make_source,
    query,
    start_fake,
)
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.sandbox import FaultKind

START_MS = day_start_ms(CYCLE.start)
END_MS = day_end_ms(CYCLE.end)
OPEN_STAGES = {
    s["id"] for p in PIPELINES for s in p["stages"] if s["metadata"]["isClosed"] == "false"
}


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[HubSpotSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def in_cycle(record: CrmRecord, name: str) -> bool:
    raw = record.properties.get(name)
    return raw is not None and START_MS <= to_ms(parse_time(raw)) <= END_MS


def amount_sum(records: list[CrmRecord], name: str = "amount") -> Decimal:
    return sum(
        (Decimal(r.properties[name] or "0") for r in records if r.properties.get(name)),
        Decimal(0),
    )


def deals(fake: Fake, predicate: Callable[[CrmRecord], bool]) -> list[CrmRecord]:
    return fake.portal.where("deals", predicate)


# --- values --------------------------------------------------------------------------------


async def test_count_won_deals_in_the_cycle(fake: Fake, source: HubSpotSource) -> None:
    reading = await source.fetch_one(
        query(pipeline="Sales Pipeline", stage="Closed Won", date_property="closedate")
    )
    expected = deals(
        fake,
        lambda d: (
            d.properties["pipeline"] == "default"
            and d.properties["dealstage"] == "closedwon"
            and in_cycle(d, "closedate")
        ),
    )
    assert len(expected) > 3
    assert reading.value == len(expected)
    assert reading.api_calls == 1  # the pipelines call is not this query's
    assert source.api_calls == 2
    (body,) = fake.searches()
    assert body == {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "pipeline", "operator": "EQ", "value": "default"},
                    {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"},
                    {
                        "propertyName": "closedate",
                        "operator": "BETWEEN",
                        "value": "1790812800000",  # 2026-10-01T00:00:00Z
                        "highValue": "1798761599999",  # 2026-12-31T23:59:59.999Z
                    },
                ]
            }
        ],
        "properties": ["hs_object_id"],
        "sorts": [],
        "limit": 1,
        "after": "0",
    }
    headers = fake.server.requests[-1].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"


async def test_sum_of_open_pipeline_pages_exactly(fake: Fake) -> None:
    source = make_source(fake, page_size=25)
    try:
        reading = await source.fetch_one(
            query(aggregate="sum", property="amount", stage_state="open")
        )
    finally:
        await source.aclose()
    expected = deals(fake, lambda d: d.properties["dealstage"] in OPEN_STAGES)
    with_amount = [d for d in expected if d.properties["amount"]]
    assert len(with_amount) > 100 and len(with_amount) < len(expected)  # some have no amount
    assert reading.value == amount_sum(expected)
    pages = -(-len(with_amount) // 25)
    assert reading.api_calls == pages
    sent = fake.searches()
    assert [b["after"] for b in sent] == [str(25 * n) for n in range(pages)]
    filters = sent[0]["filterGroups"][0]["filters"]
    assert filters[0]["propertyName"] == "dealstage" and filters[0]["operator"] == "IN"
    assert set(filters[0]["values"]) == OPEN_STAGES
    assert filters[1] == {"propertyName": "amount", "operator": "HAS_PROPERTY"}
    assert sent[0]["properties"] == ["amount"] and sent[0]["limit"] == 25


async def test_stage_label_across_pipelines(fake: Fake, source: HubSpotSource) -> None:
    reading = await source.fetch_one(query(aggregate="sum", property="amount", stage="closed won"))
    won = deals(fake, lambda d: d.properties["dealstage"] in {"closedwon", "101202304"})
    assert {d.properties["pipeline"] for d in won} == {"default", "renewals"}
    assert reading.value == amount_sum(won)
    stage_filter = fake.searches()[0]["filterGroups"][0]["filters"][0]
    assert stage_filter == {
        "propertyName": "dealstage",
        "operator": "IN",
        "values": ["closedwon", "101202304"],
    }


async def test_contacts_and_companies_with_cycle_placeholders(
    fake: Fake, source: HubSpotSource
) -> None:
    filters = [
        {"property": "lifecyclestage", "operator": "EQ", "value": "customer"},
        {
            "property": "createdate",
            "operator": "BETWEEN",
            "value": "{cycle_start}",
            "high_value": "{cycle_end}",
        },
    ]
    reading = await source.fetch_one(query(object="contacts", filters=filters))
    expected = fake.portal.where(
        "contacts",
        lambda c: c.properties["lifecyclestage"] == "customer" and in_cycle(c, "createdate"),
    )
    assert len(expected) > 0 and reading.value == len(expected)
    sent = fake.searches()[0]["filterGroups"][0]["filters"][1]
    assert sent["value"] == str(START_MS) and sent["highValue"] == str(END_MS)

    revenue = await source.fetch_one(
        query(object="companies", aggregate="sum", property="annualrevenue")
    )
    assert revenue.value == amount_sum(fake.portal.all("companies"), "annualrevenue")


async def test_any_of_is_an_or_of_groups(fake: Fake, source: HubSpotSource) -> None:
    reading = await source.fetch_one(
        query(
            date_property="createdate",
            any_of=[
                [{"property": "hubspot_owner_id", "operator": "EQ", "value": "101"}],
                [{"property": "hubspot_owner_id", "operator": "IN", "values": ["102", 103]}],
            ],
        )
    )
    expected = deals(
        fake,
        lambda d: (
            d.properties["hubspot_owner_id"] in {"101", "102", "103"} and in_cycle(d, "createdate")
        ),
    )
    assert reading.value == len(expected)
    groups = fake.searches()[0]["filterGroups"]
    assert len(groups) == 2
    assert groups[1]["filters"][0]["values"] == ["102", "103"]  # numbers sent as strings
    assert all(g["filters"][-1]["propertyName"] == "createdate" for g in groups)


async def test_values_move_when_deals_are_created(fake: Fake, source: HubSpotSource) -> None:
    spec = query(aggregate="sum", property="amount", stage="closedwon", date_property="closedate")
    before = (await source.fetch_one(spec)).value
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = await client.post(
            f"{fake.url}/crm/v3/objects/deals",
            json={
                "properties": {
                    "amount": "1234.56",
                    "dealstage": "closedwon",
                    "pipeline": "default",
                    "closedate": "2026-11-20T10:00:00.000Z",
                }
            },
        )
    assert created.status_code == 201
    after = (await source.fetch_one(spec)).value
    assert before is not None and after == before + Decimal("1234.56")


# --- the 10,000-result ceiling -------------------------------------------------------------


@pytest.fixture
def small_fake() -> Iterator[Fake]:
    yield from start_fake(search_ceiling=40)


async def test_fake_refuses_to_page_past_its_ceiling(small_fake: Fake) -> None:
    body = {"filterGroups": [], "properties": [], "sorts": [], "limit": 20, "after": "40"}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = await client.post(f"{small_fake.url}/crm/v3/objects/deals/search", json=body)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("date_property", [None, "closedate"])
async def test_large_sums_split_their_window(small_fake: Fake, date_property: str | None) -> None:
    source = make_source(small_fake, search_result_limit=40, page_size=20)
    spec: dict[str, Any] = {"aggregate": "sum", "property": "amount"}
    if date_property:
        spec["date_property"] = date_property
    try:
        reading = await source.fetch_one(query(**spec))
    finally:
        await source.aclose()
    if date_property:
        expected = deals(small_fake, lambda d: in_cycle(d, "closedate"))
    else:
        expected = small_fake.portal.all("deals")
    assert len([d for d in expected if d.properties["amount"]]) > 40
    assert reading.value == amount_sum(expected)
    sent = small_fake.searches()
    assert all(int(b["after"]) < 40 for b in sent)
    split_on = date_property or "createdate"
    windows = {
        (f["value"], f["highValue"])
        for b in sent
        for f in b["filterGroups"][0]["filters"]
        if f["propertyName"] == split_on and f["operator"] == "BETWEEN"
    }
    assert len(windows) > 2  # the window was halved, more than once
    assert reading.api_calls == len(sent)


async def test_one_instant_over_the_ceiling_is_an_error(small_fake: Fake) -> None:
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(45):
        small_fake.portal.add(
            "deals", {"amount": str(n), "closedate": "2026-11-02T00:00:00Z"}, moment
        )
    source = make_source(small_fake, search_result_limit=40)
    try:
        with pytest.raises(QueryError, match="share one createdate timestamp") as caught:
            await source.fetch_one(query(aggregate="sum", property="amount"))
    finally:
        await source.aclose()
    assert str(caught.value).startswith("connection 'crm', metric 'pipeline': more than 40")


# --- rate limits ----------------------------------------------------------------------------

SECONDLY = json.dumps(
    {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c0ffee00-1111-2222-3333-444455556666",
        "policyName": "SECONDLY",
        "requestId": "0f0f0f0f",
    }
)


async def test_secondly_429_is_waited_out(fake: Fake, source: HubSpotSource) -> None:
    fake.fault(FaultKind.STATUS, status=429, body=SECONDLY, path="/search")
    started = time.monotonic()
    reading = await source.fetch_one(query())
    assert time.monotonic() - started >= 0.05  # FastSource.secondly_wait
    assert reading.value == len(fake.portal.all("deals"))
    assert len(fake.searches()) == 2 and source.api_calls == 2


async def test_retry_after_is_honoured_when_sent(fake: Fake, source: HubSpotSource) -> None:
    fake.fault(FaultKind.STATUS, status=429, body=SECONDLY, retry_after="0.3", path="/search")
    started = time.monotonic()
    reading = await source.fetch_one(query(object="contacts"))
    assert time.monotonic() - started >= 0.3
    assert reading.value == len(fake.portal.all("contacts"))


async def test_rolling_429_on_pipelines_is_retried(fake: Fake, source: HubSpotSource) -> None:
    body = json.loads(SECONDLY) | {"policyName": "TEN_SECONDLY_ROLLING"}
    fake.fault(FaultKind.STATUS, status=429, body=json.dumps(body), path="/pipelines/")
    reading = await source.fetch_one(query(stage="Closed Lost", pipeline="default"))
    lost = deals(fake, lambda d: d.properties["dealstage"] == "closedlost")
    assert reading.value == len(lost)
    assert [r.path for r in fake.server.requests].count("/crm/v3/pipelines/deals") == 2


async def test_daily_429_pauses_the_connection(fake: Fake, source: HubSpotSource) -> None:
    body = json.loads(SECONDLY) | {
        "policyName": "DAILY",
        "message": "You have reached your daily limit.",
    }
    fake.fault(FaultKind.STATUS, status=429, body=json.dumps(body), path="/search")
    with pytest.raises(QuotaExhaustedError) as caught:
        await source.fetch_one(query())
    assert caught.value.resume_at is not None and caught.value.resume_at > time.time() + 1
    assert "daily" in str(caught.value) and "metric 'pipeline'" in str(caught.value)
    assert len(fake.searches()) == 1  # not retried
    readings = await source.fetch([query("other")])  # paused: nothing is sent
    assert isinstance(readings[0].error, QuotaExhaustedError)
    assert len(fake.searches()) == 1


async def test_daily_remaining_header_pauses_too(fake: Fake, source: HubSpotSource) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=200,
        body=json.dumps({"results": PIPELINES}),
        headers={"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "0"},
        path="/pipelines/",
    )
    with pytest.raises(QuotaExhaustedError):
        await source.fetch_one(query(stage="closedwon"))
    assert fake.searches() == []


async def test_search_is_paced_under_the_per_second_limit() -> None:
    for fake in start_fake(search_per_second=5):
        source = make_source(fake, search_requests_per_second=4, page_size=50)
        try:
            started = time.monotonic()
            reading = await source.fetch_one(query(aggregate="sum", property="amount"))
            elapsed = time.monotonic() - started
        finally:
            await source.aclose()
        assert reading.value == amount_sum(fake.portal.all("deals"))
        calls = len(fake.searches())
        assert calls >= 6 and source.client.rate_limited == 0
        assert elapsed >= (calls - 1) / 4 - 0.05


async def test_fakes_own_secondly_limit_answers_429_and_is_retried() -> None:
    class PatientSource(FastSource):
        secondly_wait = 0.5  # the fake's window is one second

    for fake in start_fake(search_per_second=2):
        source = PatientSource("crm", make_config(fake, page_size=100, max_retries=4))
        try:
            reading = await source.fetch_one(query(aggregate="sum", property="amount"))
        finally:
            await source.aclose()
        assert reading.value == amount_sum(fake.portal.all("deals"))
        assert source.client.rate_limited >= 1


# --- vendor trouble -------------------------------------------------------------------------


async def test_unavailable_then_success(fake: Fake, source: HubSpotSource) -> None:
    fake.fault(FaultKind.STATUS, status=503, path="/search")
    reading = await source.fetch_one(query(object="companies"))
    assert reading.value == len(fake.portal.all("companies"))
    assert len(fake.searches()) == 2


async def test_wrong_token_names_the_connection(fake: Fake) -> None:
    source = make_source(fake, token="pat-na1-not-the-token-31415")
    try:
        with pytest.raises(CredentialsError) as caught:
            await source.fetch_one(query())
    finally:
        await source.aclose()
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert message.startswith("connection 'crm', metric 'pipeline': the access token was rejected")
    assert "INVALID_AUTHENTICATION: Authentication credentials not found" in message
    assert "not-the-token-31415" not in message


async def test_unknown_property_names_the_metric(fake: Fake, source: HubSpotSource) -> None:
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query(aggregate="sum", property="amout"))
    assert str(caught.value) == (
        "connection 'crm', metric 'pipeline': HubSpot rejected the search (HTTP 400: "
        'VALIDATION_ERROR: There was a problem with the request.; Property "amout" does not exist)'
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [(FaultKind.HTML, "HTML page"), (FaultKind.MALFORMED, "not valid JSON")],
)
async def test_unreadable_answers(
    fake: Fake, source: HubSpotSource, kind: FaultKind, words: str
) -> None:
    fake.fault(kind, path="/search")
    with pytest.raises(VendorResponseError) as caught:
        await source.fetch_one(query())
    assert words in str(caught.value) and "connection 'crm', metric 'pipeline'" in str(caught.value)


async def test_wrong_shape_and_loops(fake: Fake, source: HubSpotSource) -> None:
    fake.fault(FaultKind.STATUS, status=200, body='{"results": []}', path="/search")
    with pytest.raises(VendorResponseError, match="lacks `total`"):
        await source.fetch_one(query())
    page = {
        "total": 3,
        "results": [{"id": "1", "properties": {"amount": "5"}}],
        "paging": {"next": {"after": "7"}},
    }
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(page), path="/search", times=3)
    with pytest.raises(VendorResponseError, match="pagination loop"):
        await source.fetch_one(query(aggregate="sum", property="amount"))
    bad = {"total": 1, "results": [{"id": "9", "properties": {"amount": "lots"}}]}
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(bad), path="/search")
    with pytest.raises(VendorResponseError, match="amount of record 9 is not a number: 'lots'"):
        await source.fetch_one(query(aggregate="sum", property="amount"))


async def test_paging_past_the_total_is_an_error(fake: Fake) -> None:
    """A window of at most 2 records read 1 a page needs 2 pages; HubSpot handing out opaque
    cursors for more than 3 is a listing that never ends, not a short sum."""
    source = make_source(fake, search_result_limit=2, page_size=1)
    for cursor in ["a", "b", "c", "d"]:
        page = {
            "total": 2,
            "results": [{"id": cursor, "properties": {"amount": "5"}}],
            "paging": {"next": {"after": cursor}},
        }
        fake.fault(FaultKind.STATUS, status=200, body=json.dumps(page), path="/search")
    try:
        with pytest.raises(VendorResponseError, match=r"more than max_pages \(3\) pages of deals"):
            await source.fetch_one(query(aggregate="sum", property="amount"))
    finally:
        await source.aclose()
    assert len(fake.searches()) == 3


async def test_unknown_pipeline_or_stage(fake: Fake, source: HubSpotSource) -> None:
    with pytest.raises(QueryError, match=r"no deals pipeline 'Enterprise'; there are: 'Sales"):
        await source.fetch_one(query(pipeline="Enterprise"))
    with pytest.raises(QueryError, match=r"no stage 'Won' in pipeline 'Renewals'; stages: "):
        await source.fetch_one(query(pipeline="Renewals", stage="Won"))
    calls = [r.path for r in fake.server.requests]
    assert calls == ["/crm/v3/pipelines/deals"]  # cached after the first look-up


async def test_fetch_reports_errors_per_query(fake: Fake, source: HubSpotSource) -> None:
    good = query("deals", object="deals")
    bad = query("broken", aggregate="sum", property="nope")
    readings = await source.fetch([good, bad])
    assert readings[0].ok and readings[0].value == len(fake.portal.all("deals"))
    assert isinstance(readings[1].error, QueryError) and "metric 'broken'" in str(readings[1].error)


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"aggregate": "sum"}, "needs `property`"),
        ({"property": "amount"}, "only used by aggregate: sum"),
        ({"object": "contacts", "stage": "x"}, "apply to deals and tickets"),
        ({"stage": "a", "stage_state": "open"}, "either `stage` or `stage_state`"),
        ({"filters": [{"property": "a", "operator": "BETWEEN", "value": 1}]}, "high_value"),
        ({"filters": [{"property": "a", "operator": "IN", "value": 1}]}, "takes values"),
        ({"filters": [{"property": "a", "operator": "HAS_PROPERTY", "value": 1}]}, "no value"),
        (
            {"filters": [{"property": "a", "operator": "GT", "value": "since {cycle_start}"}]},
            "must be the whole value",
        ),
        ({"any_of": [[]] * 6}, "at most 5 filter groups"),
        (
            {
                "filters": [{"property": f"p{n}", "operator": "HAS_PROPERTY"} for n in range(9)],
                "date_property": "closedate",
                "pipeline": "default",
            },
            "would hold 11 filters",
        ),
        ({"object": "deals/../x"}, "String should match pattern"),
    ],
)
def test_query_validation(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        HubSpotQuery.model_validate(spec)


def test_query_text_connection_and_descriptor() -> None:
    spec = HubSpotQuery.model_validate(
        {
            "aggregate": "sum",
            "property": "amount",
            "pipeline": "Sales Pipeline",
            "stage": ["Closed Won"],
            "date_property": "closedate",
            "filters": [{"property": "hubspot_owner_id", "operator": "EQ", "value": "101"}],
        }
    )
    assert spec.query_text() == (
        "HubSpot deals: sum(amount) where pipeline = 'Sales Pipeline' AND stage in ['Closed Won']"
        " AND closedate within the cycle AND hubspot_owner_id EQ 101"
    )
    config = HubSpotConnection.model_validate({"type": "hubspot", "access_token": "pat-na1-s3cr3t"})
    assert config.secret_values() == ["pat-na1-s3cr3t"] and "s3cr3t" not in repr(config)
    assert config.base_url == "https://api.hubapi.com" and config.search_requests_per_second == 4
    with pytest.raises(ValidationError, match="API keys are retired"):
        HubSpotConnection.model_validate({"type": "hubspot", "access_token": "hapikey-123"})
    assert connector.type == "hubspot" and connector.query_model is HubSpotQuery
    assert connector.fake is not None and len(connector.fake().state.portal.all("deals")) == 300
