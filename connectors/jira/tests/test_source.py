"""The Jira source against the fake on a loopback socket: exact numbers from the fake's data."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from pydantic import ValidationError

from connectors.jira import JiraQuery
from connectors.jira.fake import REMOVED_SEARCH
from connectors.jira.models import render_jql
from connectors.jira.tests.helpers import CYCLE, FastJira, Site, connect, query, serve
from okrsync.errors import CredentialsError, QueryError, RateLimitedError, VendorResponseError
from okrsync.sandbox import Fault, FaultKind

SEARCH = r"/rest/api/3/search/jql$"


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


@pytest.fixture
async def jira(site: Site) -> AsyncIterator[FastJira]:
    connector = connect(site.url)
    yield connector
    await connector.aclose()


async def test_exact_count_pages_ids_with_next_page_token(site: Site, jira: FastJira) -> None:
    expected = len(site.data.select("project = WEB"))
    reading = await jira.fetch_one(query(jql="project = WEB"))
    assert reading.value == Decimal(expected) == Decimal(120)
    (sent,) = [r for r in site.server.requests if r.path.endswith("/search/jql")]
    assert sent.method == "POST"
    assert sent.json_body() == {"jql": "project = WEB", "fields": ["id"], "maxResults": 5000}
    assert reading.api_calls == 1
    assert reading.raw_digest.startswith("sha256:")


async def test_sum_follows_next_page_token_until_is_last(site: Site) -> None:
    jira = connect(site.url, page_size=50)
    try:
        reading = await jira.fetch_one(
            query(jql="project = WEB", aggregate="sum", field="customfield_10016")
        )
    finally:
        await jira.aclose()
    issues = site.data.select("project = WEB")
    expected = sum(Decimal(i.fields["customfield_10016"] or 0) for i in issues)
    assert reading.value == expected
    pages = [r.json_body() for r in site.server.requests if r.path.endswith("/search/jql")]
    assert len(pages) == 3  # 120 issues, 50 per page
    assert "nextPageToken" not in pages[0]
    assert pages[1]["nextPageToken"] and pages[2]["nextPageToken"] != pages[1]["nextPageToken"]
    assert all(p["fields"] == ["customfield_10016"] and p["maxResults"] == 50 for p in pages)


async def test_approximate_count_is_one_call(site: Site, jira: FastJira) -> None:
    reading = await jira.fetch_one(query(jql="project = OKR", count="approximate"))
    assert reading.value == Decimal(len(site.data.select("project = OKR")))
    (sent,) = site.server.requests
    assert sent.path == "/rest/api/3/search/approximate-count"
    assert sent.json_body() == {"jql": "project = OKR"}


async def test_story_points_by_field_name_sum_and_average(site: Site, jira: FastJira) -> None:
    # OKR-12's children: 1+2+3+5+8+13+(none)+3 = 35 over 7 estimated issues.
    total = await jira.fetch_one(
        query(jql="parent = OKR-12", aggregate="sum", field="Story point estimate")
    )
    mean = await jira.fetch_one(
        query(jql="parent = OKR-12", aggregate="average", field="story point estimate")
    )
    assert total.value == Decimal(35)
    assert mean.value == Decimal(5)
    field_calls = [r for r in site.server.requests if r.path == "/rest/api/3/field"]
    assert len(field_calls) == 1  # the field list is cached per connection


async def test_done_ratio_under_a_parent(site: Site, jira: FastJira) -> None:
    reading = await jira.fetch_one(query(aggregate="done_ratio", parent="OKR-12"))
    assert reading.value == Decimal("0.75")  # 6 of 8 children are in the Done category
    sent = next(r for r in site.server.requests if r.path.endswith("/search/jql")).json_body()
    assert sent["jql"] == 'parent = "OKR-12"'
    assert sent["fields"] == ["status"]
    narrowed = await jira.fetch_one(
        query(aggregate="done_ratio", parent="OKR-12", jql="issuetype = Story")
    )
    assert narrowed.value == Decimal("0.75")
    empty = await jira.fetch_one(query(aggregate="done_ratio", parent="API-999"))
    assert empty.value is None and empty.error is None  # nothing to divide: no data


async def test_cycle_placeholders_become_quoted_dates(site: Site, jira: FastJira) -> None:
    jql = 'project = OKR AND created >= {cycle_start} AND created <= "{cycle_end}"'
    reading = await jira.fetch_one(query(jql=jql))
    rendered = 'project = OKR AND created >= "2026-10-01" AND created <= "2026-12-31"'
    assert render_jql(jql, CYCLE.start, CYCLE.end) == rendered
    assert reading.value == Decimal(len(site.data.select(rendered)))
    assert rendered in reading.query_text
    assert site.server.requests[0].json_body()["jql"] == rendered


def test_unknown_placeholders_and_mismatched_options_are_config_errors() -> None:
    with pytest.raises(ValidationError, match=r"\{quarter\}"):
        JiraQuery(jql="project = OKR AND created >= {quarter}")
    with pytest.raises(ValidationError, match="needs field"):
        JiraQuery(jql="project = OKR", aggregate="sum")
    with pytest.raises(ValidationError, match="approximate"):
        JiraQuery(jql="project = OKR", aggregate="sum", field="x", count="approximate")


async def test_bad_jql_names_the_metric_and_the_jql(jira: FastJira) -> None:
    (reading,) = await jira.fetch([query("open_bugs", jql="project = OKR AND colour = red")])
    assert isinstance(reading.error, QueryError)
    message = str(reading.error)
    assert "connection 'jira-test'" in message and "metric 'open_bugs'" in message
    assert "Field 'colour' does not exist" in message
    assert "JQL: project = OKR AND colour = red" in message


async def test_the_old_search_endpoint_answers_410_like_jira_cloud(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url, auth=("okr-bot@example.com", "x")) as http:
        response = await http.get("/rest/api/3/search", params={"jql": "project = OKR"})
    # 410 is only answered to authenticated calls; with bad credentials it is a 401 first.
    assert response.status_code == 401
    async with httpx.AsyncClient(
        base_url=site.url, auth=("okr-bot@example.com", "sandbox-api-token")
    ) as http:
        response = await http.post("/rest/api/3/search", json={"jql": "project = OKR"})
    assert response.status_code == 410
    assert response.json() == {"errorMessages": [REMOVED_SEARCH], "errors": {}}


async def test_429_with_retry_after_then_success(site: Site, jira: FastJira) -> None:
    site.server.faults.add(
        Fault(
            kind=FaultKind.STATUS,
            status=429,
            retry_after="1",
            headers={"RateLimit-Reason": "jira-burst-based"},
            path=SEARCH,
        )
    )
    started = time.monotonic()
    reading = await jira.fetch_one(query(jql="project = API"))
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert reading.value == Decimal(90)
    assert jira.client.rate_limited == 1


async def test_429_that_persists_says_which_limit(site: Site) -> None:
    site.server.faults.add(
        Fault(
            kind=FaultKind.STATUS,
            status=429,
            retry_after="0",
            headers={"RateLimit-Reason": "jira-quota-tenant-based"},
            times=-1,
        )
    )
    jira = connect(site.url)
    try:
        with pytest.raises(RateLimitedError, match="RateLimit-Reason: jira-quota-tenant-based"):
            await jira.fetch_one(query(jql="project = API"))
    finally:
        await jira.aclose()


async def test_5xx_then_success(site: Site, jira: FastJira) -> None:
    site.server.faults.add(Fault(kind=FaultKind.STATUS, status=503, path=SEARCH))
    reading = await jira.fetch_one(query(jql="project = API"))
    assert reading.value == Decimal(90)
    assert len([r for r in site.server.requests if r.path.endswith("/search/jql")]) == 2


async def test_401_names_the_connection_and_the_credentials(site: Site) -> None:
    jira = connect(site.url, api_token="revoked-token")
    try:
        (reading,) = await jira.fetch([query("open_bugs", jql="project = OKR")])
    finally:
        await jira.aclose()
    assert isinstance(reading.error, CredentialsError)
    message = str(reading.error)
    assert message.startswith("connection 'jira-test', metric 'open_bugs': ")
    assert "check email and api_token" in message and "HTTP 401" in message
    assert "revoked-token" not in message


async def test_malformed_body_is_a_vendor_response_error(site: Site, jira: FastJira) -> None:
    site.server.faults.add(Fault(kind=FaultKind.MALFORMED, path=SEARCH))
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await jira.fetch_one(query(jql="project = API"))
    site.server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body='{"isLast": true}'))
    with pytest.raises(VendorResponseError, match="no list of issues"):
        await jira.fetch_one(query(jql="project = API"))


async def test_a_next_page_token_handed_out_twice_is_a_loop(site: Site, jira: FastJira) -> None:
    page = '{"issues": [{"id": "1"}], "nextPageToken": "again", "isLast": false}'
    site.server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body=page, times=-1))
    with pytest.raises(VendorResponseError) as caught:
        await jira.fetch_one(query(jql="project = API"))
    message = str(caught.value)
    assert message.startswith("connection 'jira-test', metric 'okr_metric': pagination loop")
    assert "issues of JQL project = API" in message and "'again'" in message
    assert len([r for r in site.server.requests if r.path.endswith("/search/jql")]) == 2


# --- Data Center --------------------------------------------------------------------------------


@pytest.fixture
def dc_site() -> Iterator[Site]:
    yield from serve("datacenter")


async def test_datacenter_counts_with_total_and_pages_with_start_at(dc_site: Site) -> None:
    jira = connect(dc_site.url, "datacenter", page_size=40)
    try:
        count = await jira.fetch_one(query(jql="project = OKR", count="approximate"))
        points = await jira.fetch_one(
            query(jql="project = OKR", aggregate="sum", field="Story point estimate")
        )
    finally:
        await jira.aclose()
    issues = dc_site.data.select("project = OKR")
    assert count.value == Decimal(len(issues)) == Decimal(98)
    assert points.value == sum(Decimal(i.fields["customfield_10016"] or 0) for i in issues)
    searches = [r for r in dc_site.server.requests if r.path == "/rest/api/2/search"]
    assert [r.json_body()["startAt"] for r in searches] == [0, 0, 40, 80]
    assert searches[0].json_body()["maxResults"] == 0
    assert all(r.headers["authorization"] == "Bearer sandbox-pat" for r in searches)


async def test_datacenter_page_empty_before_the_total_fails_the_metric(dc_site: Site) -> None:
    """Summing what came before the empty page would be a short sum that looks right."""
    page = '{"startAt": 0, "maxResults": 40, "total": 5, "issues": []}'
    dc_site.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=200, body=page, path=r"/rest/api/2/search$")
    )
    jira = connect(dc_site.url, "datacenter", page_size=40)
    try:
        with pytest.raises(VendorResponseError, match="promised 5 issues of JQL project = OKR"):
            await jira.fetch_one(
                query(jql="project = OKR", aggregate="sum", field="Story point estimate")
            )
    finally:
        await jira.aclose()


async def test_datacenter_401_says_personal_access_token(dc_site: Site) -> None:
    jira = connect(dc_site.url, "datacenter", personal_access_token="wrong")
    try:
        with pytest.raises(CredentialsError, match="check personal_access_token"):
            await jira.fetch_one(query(jql="project = OKR"))
    finally:
        await jira.aclose()


def test_descriptor_offers_source_sink_and_fake() -> None:
    from connectors.jira import JiraConnection, JiraConnector, JiraMirror, connector

    assert connector.type == "jira"
    assert connector.query_model is JiraQuery and connector.mirror_model is JiraMirror
    assert connector.fake is not None and connector.fake() is not None
    config = JiraConnection(
        url="https://acme.atlassian.net/",
        email="a@b.c",
        api_token="t",
    )
    assert config.url == "https://acme.atlassian.net"
    assert isinstance(connector.create("prod", config), JiraConnector)
    with pytest.raises(ValidationError, match="personal_access_token"):
        JiraConnection(url="https://jira.acme.internal", deployment="datacenter")
    with pytest.raises(ValidationError, match="email and api_token"):
        JiraConnection(url="https://acme.atlassian.net")
