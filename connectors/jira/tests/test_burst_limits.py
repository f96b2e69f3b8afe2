"""Jira Cloud's documented burst limits in the fake, and the connection's pace following them.

The limiter's arithmetic is checked on an injected clock; the headers over a real socket; the
adaptation by what the fake counted (429s, requests in flight), never by the wall clock.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from connectors.jira import JiraConnection
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, JiraData, jira_app
from connectors.jira.fake.limits import (
    BURST_REASON,
    DOCUMENTED_BURST_RATES,
    BurstLimiter,
    reset_stamp,
)
from connectors.jira.tests.helpers import FastJira, Site, query
from okrsync.sandbox import SandboxServer

RESET_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")  # Jira's yyyy-MM-ddTHH:mmZ
AUTH = (DEFAULT_EMAIL, DEFAULT_API_TOKEN)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_documented_rates_are_atlassians() -> None:
    assert DOCUMENTED_BURST_RATES == {"GET": 100.0, "POST": 100.0, "PUT": 50.0, "DELETE": 50.0}


def test_a_bucket_per_endpoint_and_method_with_near_limit_under_a_fifth() -> None:
    clock = Clock()
    limiter = BurstLimiter({"POST": 10.0, "GET": 5.0}, clock=clock, wall_clock=lambda: 0.0)
    answers = [limiter.admit("search_jql", "POST") for _ in range(10)]
    assert all(a is not None and a.allowed for a in answers)
    remaining = [a.headers["X-RateLimit-Remaining"] for a in answers if a is not None]
    assert remaining == [str(n) for n in range(9, -1, -1)]
    near = [a.headers.get("X-RateLimit-NearLimit") for a in answers if a is not None]
    assert near == [None] * 8 + ["true", "true"]  # 1 and 0 left of 10: under 20%
    assert all(a.headers["X-RateLimit-Limit"] == "10" for a in answers if a is not None)

    refused = limiter.admit("search_jql", "POST")
    assert refused is not None and not refused.allowed
    assert refused.headers == {
        "Retry-After": "1",
        "X-RateLimit-Reset": reset_stamp(1.0),
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "RateLimit-Reason": BURST_REASON,
    }
    # Other endpoints and methods have buckets of their own; an unlimited method has none.
    other = limiter.admit("approximate_count", "POST")
    assert other is not None and other.allowed
    got = limiter.admit("search_jql", "GET")
    assert got is not None and got.headers["X-RateLimit-Limit"] == "5"
    assert limiter.admit("search_jql", "PATCH") is None

    clock.now += 0.1  # one token back at 10 a second
    again = limiter.admit("search_jql", "POST")
    assert again is not None and again.allowed and again.headers["X-RateLimit-Remaining"] == "0"


def test_reset_is_written_to_the_minute_in_utc() -> None:
    moment = datetime(2026, 12, 7, 1, 2, 59, tzinfo=UTC).timestamp()
    assert reset_stamp(moment) == "2026-12-07T01:02Z"


@pytest.fixture
def site() -> Iterator[Site]:
    rates = dict(DOCUMENTED_BURST_RATES)
    app = jira_app(data=JiraData(), burst_rates=rates)
    with SandboxServer(app, name="jira-burst") as server:
        yield Site(server, app)


def test_the_fake_sends_jiras_headers_on_answers_and_on_its_429(site: Site) -> None:
    fake = site.app.state.fake
    fake.limiter.rates["POST"] = 1.0  # a site under load: one search a second
    body = {"jql": "project = API", "fields": ["id"]}
    answers = [
        httpx.post(f"{site.url}/rest/api/3/search/jql", json=body, auth=AUTH, timeout=10)
        for _ in range(6)
    ]
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert ok and refused  # unless every answer took a second
    for answer in ok:
        assert answer.headers["X-RateLimit-Limit"] == "1"
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert answer.headers["X-RateLimit-NearLimit"] == "true"
    for answer in refused:
        assert int(answer.headers["Retry-After"]) >= 1
        assert RESET_FORMAT.match(answer.headers["X-RateLimit-Reset"])
        assert answer.headers["RateLimit-Reason"] == BURST_REASON
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert answer.content == b""  # Jira documents no body for a 429
    assert fake.rate_limited[BURST_REASON] == len(refused)
    # The anonymous serverInfo is not limited and carries no limit headers.
    info = httpx.get(f"{site.url}/rest/api/3/serverInfo", timeout=10)
    assert info.status_code == 200 and "X-RateLimit-Limit" not in info.headers


async def ask(jira: FastJira, n: int) -> None:
    readings = await asyncio.gather(
        *(
            jira.fetch_one(query(f"m{i}", jql="project = API", count="approximate"))
            for i in range(n)
        )
    )
    assert all(r.value == Decimal(90) for r in readings)


async def test_the_pace_and_the_requests_in_flight_follow_the_sites_budget(site: Site) -> None:
    fake = site.app.state.fake
    config = JiraConnection(
        type="jira", url=site.url, email=DEFAULT_EMAIL, api_token=DEFAULT_API_TOKEN
    )
    jira = FastJira("jira-test", config)
    try:
        # The documented budget (100/s) with slow answers: the connection's own limit binds.
        fake.latency = 0.2
        await ask(jira, 40)
        documented_peak = fake.peak_in_flight
        documented_rate = jira.client.budget.rate
        # The site lowers its budget to 5 a second and says so in X-RateLimit-Limit: the
        # connection hears it on its next answer; from then on it keeps to it.
        fake.limiter.rates["POST"] = 5.0
        await ask(jira, 1)
        fake.peak_in_flight = 0
        refused_before = fake.rate_limited[BURST_REASON]
        await ask(jira, 20)
        lowered_peak = fake.peak_in_flight
        lowered_rate = jira.client.budget.rate
        refused = fake.rate_limited[BURST_REASON] - refused_before
    finally:
        await jira.aclose()
    assert documented_rate == 100.0
    # Ten in flight (max_concurrency), not the four the connection used to be held to.
    assert config.max_concurrency == 10
    assert 4 < documented_peak <= config.max_concurrency
    assert lowered_rate is not None and lowered_rate <= 5.0
    # At 5 a second and 0.2 s an answer, one or two are in flight; bursts of five at most.
    assert lowered_peak <= 6
    # Ignoring the header, 20 at 100/s into a bucket of 5 would be refused 15 times at least.
    assert refused <= 2
