"""The Linear source against the sandbox Linear: exact counts and sums, pagination, failures."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.linear import LinearConnector
from connectors.linear.fake import API_KEY
from connectors.linear.tests.conftest import CYCLE, Fake, make_connector, new_fake, read
from okrsync.errors import (
    CredentialsError,
    QueryError,
    RateLimitedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import FaultKind

CYCLE_START = datetime(2026, 10, 1, tzinfo=UTC)


def expected(fake: Fake, **want: Any) -> list[dict[str, Any]]:
    """The fake's issues a filter should match, computed here without the fake's matcher."""
    found = []
    for issue in fake.data.issues:
        if issue["archivedAt"] is not None:
            continue
        if "team" in want and issue["team"]["key"] != want["team"]:
            continue
        if "state" in want and issue["state"]["type"] != want["state"]:
            continue
        if "completed_since" in want:
            done = issue["completedAt"]
            if done is None or datetime.fromisoformat(done) < want["completed_since"]:
                continue
        if "labels" in want:
            names = {label["name"] for label in issue["labels"]}
            if not set(want["labels"]) <= names:
                continue
        found.append(issue)
    return found


def estimates(issues: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(i["estimate"]) for i in issues if i["estimate"] is not None), Decimal(0))


async def test_count_and_sum_for_a_team(fake: Fake, linear: LinearConnector) -> None:
    count = await read(linear, team="ENG")
    total = await read(linear, team="ENG", aggregate="sum_estimate")
    eng = expected(fake, team="ENG")
    assert count.value == len(eng) == 77
    assert total.value == estimates(eng) == 221
    assert count.error is None and count.api_calls == 1
    assert count.raw_digest.startswith("sha256:")
    assert count.query_text == 'issues(filter: {"team":{"key":{"eq":"ENG"}}}) → count of nodes'


async def test_completed_this_cycle_with_labels(fake: Fake, linear: LinearConnector) -> None:
    done = await read(linear, team="ENG", state_type="completed", completed_after="{cycle_start}")
    want = expected(fake, team="ENG", state="completed", completed_since=CYCLE_START)
    assert done.value == len(want) and done.value > 0
    both = await read(linear, labels=["Bug", "Feature"], aggregate="sum_estimate")
    assert both.value == estimates(expected(fake, labels=["Bug", "Feature"]))
    sent = fake.bodies()[0]["variables"]
    assert sent["filter"] == {
        "team": {"key": {"eq": "ENG"}},
        "state": {"type": {"in": ["completed"]}},
        "completedAt": {"gte": "2026-10-01T00:00:00.000Z"},
    }
    assert sent["checkTeam"] is True and sent["first"] == 250


async def test_pagination_gives_the_exact_count_and_sum(fake: Fake) -> None:
    connector = make_connector(fake.url, page_size=20)
    try:
        count = await read(connector, team="ENG")
        total = await read(connector, team="ENG", aggregate="sum_estimate")
    finally:
        await connector.aclose()
    eng = expected(fake, team="ENG")
    assert count.value == len(eng) and total.value == estimates(eng)
    pages = math.ceil(len(eng) / 20)
    assert count.api_calls == pages == 4
    first_query = [b["variables"] for b in fake.bodies()[:pages]]
    assert first_query[0]["after"] is None and first_query[0]["checkTeam"] is True
    # each later page follows the previous page's endCursor and skips the existence checks
    assert all(v["after"] is not None and v["checkTeam"] is False for v in first_query[1:])
    assert len({v["after"] for v in first_query[1:]}) == pages - 1


def _issues_page(page_info: dict[str, Any]) -> str:
    page = {"issues": {"nodes": [{"id": "i-1", "estimate": 2}], "pageInfo": page_info}}
    return json.dumps({"data": page})


async def test_a_cursor_seen_before_is_a_pagination_loop(
    linear: LinearConnector, fake: Fake
) -> None:
    body = _issues_page({"hasNextPage": True, "endCursor": "c-1"})
    fake.fault(FaultKind.STATUS, status=200, body=body, times=-1)
    reading = await read(linear, "eng_done")
    assert isinstance(reading.error, VendorResponseError)
    assert "pagination loop" in str(reading.error) and "'c-1'" in str(reading.error)
    assert reading.error.subject == "metric 'eng_done'"
    assert len(fake.server.requests) == 2


async def test_a_next_page_without_a_cursor_is_an_error(
    linear: LinearConnector, fake: Fake
) -> None:
    body = _issues_page({"hasNextPage": True, "endCursor": None})
    fake.fault(FaultKind.STATUS, status=200, body=body, times=-1)
    reading = await read(linear, "eng_done")
    assert isinstance(reading.error, VendorResponseError)
    assert "next page of issues but gave no cursor" in str(reading.error)


async def test_unknown_team_names_the_metric(linear: LinearConnector) -> None:
    reading = await read(linear, "eng_done", team="NOPE")
    assert isinstance(reading.error, QueryError)
    assert str(reading.error) == (
        "connection 'lin', metric 'eng_done': Linear has no team with key 'NOPE'"
    )


async def test_unknown_project_and_label(linear: LinearConnector) -> None:
    project = await read(linear, project="Moonshot")
    assert isinstance(project.error, QueryError)
    assert "Linear has no project 'Moonshot'" in str(project.error)
    label = await read(linear, labels=["Bug", "Nope"])
    assert isinstance(label.error, QueryError)
    assert "no label named 'Nope'" in str(label.error)


async def test_429_then_success_honours_retry_after(fake: Fake, linear: LinearConnector) -> None:
    fake.fault(FaultKind.STATUS, status=429, retry_after="0.3", times=1)
    started = time.monotonic()
    reading = await read(linear, team="ENG")
    assert reading.value == 77
    assert time.monotonic() - started >= 0.3
    assert reading.api_calls == 2


async def test_ratelimited_body_with_http_400_is_retried(
    fake: Fake, linear: LinearConnector
) -> None:
    body = (
        '{"errors":[{"message":"Rate limit exceeded","extensions":{"code":"RATELIMITED",'
        '"type":"ratelimited","statusCode":429,"userPresentableMessage":"Too many requests."}}]}'
    )
    fake.fault(
        FaultKind.STATUS, status=400, body=body, headers={"content-type": "application/json"}
    )
    reading = await read(linear, team="ENG")
    assert reading.value == 77 and reading.api_calls == 2
    assert linear.graphql.client.rate_limited == 1


async def test_ratelimited_for_good_names_the_connection(
    fake: Fake, linear: LinearConnector
) -> None:
    body = '{"errors":[{"message":"Rate limit exceeded","extensions":{"code":"RATELIMITED"}}]}'
    fake.fault(
        FaultKind.STATUS,
        status=400,
        body=body,
        headers={"content-type": "application/json"},
        times=-1,
    )
    reading = await read(linear, team="ENG")
    assert isinstance(reading.error, RateLimitedError)
    assert str(reading.error).startswith("connection 'lin', metric 'eng_done': rate limited")


async def test_empty_request_bucket_holds_the_connection() -> None:
    fake = new_fake(requests_per_hour=2, window=0.6)
    with fake.server:
        connector = make_connector(fake.url, page_size=40)
        try:
            started = time.monotonic()
            reading = await read(connector, team="ENG")  # 2 pages, then the bucket is empty
            again = await read(connector, team="ENG")  # waits for the reset instead of a 400
        finally:
            await connector.aclose()
    assert reading.value == again.value == 77
    assert time.monotonic() - started >= 0.3
    assert [r.headers.get("authorization") for r in fake.server.requests] == [API_KEY] * 4


async def test_5xx_then_success(fake: Fake, linear: LinearConnector) -> None:
    fake.fault(FaultKind.STATUS, status=502, times=2)
    reading = await read(linear, team="ENG")
    assert reading.value == 77 and reading.api_calls == 3


async def test_5xx_for_good_is_retriable(fake: Fake, linear: LinearConnector) -> None:
    fake.fault(FaultKind.STATUS, status=503, times=-1)
    reading = await read(linear, team="ENG")
    assert isinstance(reading.error, RetriableError)
    assert "gave up after 3 attempts" in str(reading.error)


async def test_401_names_the_connection(fake: Fake, linear: LinearConnector) -> None:
    fake.fault(FaultKind.STATUS, status=401, body="Unauthorized")
    reading = await read(linear, team="ENG")
    assert isinstance(reading.error, CredentialsError)
    assert str(reading.error).startswith(
        "connection 'lin', metric 'eng_done': Linear rejected the connection's credentials"
    )


async def test_wrong_key_is_a_credentials_error_without_the_key(fake: Fake) -> None:
    connector = make_connector(fake.url, api_key="lin_api_wrongWrongWrong123")
    try:
        reading = await read(connector, team="ENG")
    finally:
        await connector.aclose()
    assert isinstance(reading.error, CredentialsError)
    text = str(reading.error)
    assert "connection 'lin'" in text and "AUTHENTICATION_ERROR" in text
    assert "lin_api_wrongWrongWrong123" not in text
    assert reading.error.status_code == 400


async def test_oauth_token_is_sent_as_bearer() -> None:
    fake = new_fake(oauth_token="oauth-token-123")
    with fake.server:
        connector = make_connector(fake.url, access_token="oauth-token-123")
        try:
            reading = await read(connector, team="ENG")
        finally:
            await connector.aclose()
    assert reading.value == 77
    assert fake.server.requests[0].headers["authorization"] == "Bearer oauth-token-123"


def test_fake_refuses_an_api_key_sent_as_bearer(fake: Fake) -> None:
    response = httpx.post(
        f"{fake.url}/graphql",
        json={"query": "{ viewer { id } }"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert "Remove the Bearer prefix" in error["message"]


@pytest.mark.parametrize("kind", [FaultKind.MALFORMED, FaultKind.HTML, FaultKind.EMPTY])
async def test_unreadable_body(fake: Fake, linear: LinearConnector, kind: FaultKind) -> None:
    fake.fault(kind)
    reading = await read(linear, team="ENG")
    assert isinstance(reading.error, VendorResponseError)
    assert str(reading.error).startswith("connection 'lin', metric 'eng_done': the vendor sent")


async def test_cycle_placeholders_fill_dates() -> None:
    from connectors.linear.models import LinearQuery

    spec = LinearQuery(created_after="{cycle_start}", created_before="{cycle_end}")
    assert spec.issue_filter(CYCLE) == {
        "createdAt": {"gte": "2026-10-01T00:00:00.000Z", "lt": "2026-12-31T00:00:00.000Z"}
    }
