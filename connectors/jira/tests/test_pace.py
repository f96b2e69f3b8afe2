"""The connection's pace, timed on the fake's request log: the default ceiling, and how Jira's
rate-limit headers steer it (NearLimit and RateLimit-Reason halve it, Data Center's announced
bucket caps it, quiet answers win it back).

Bounds are generous (the machine is shared); each test names what a missing feature would
measure instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.jira import JiraConnection
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.tests.helpers import FastJira, connect, query
from okrsync.sandbox import Fault, FaultKind, SandboxServer

COUNT = r"/rest/api/3/search/approximate-count$"


class JiraSignals:
    """Adds rate-limit headers to every answer of the fake, as a busy Jira site does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, sending)


def serve_signalling(
    deployment: Literal["cloud", "datacenter"] = "cloud",
) -> Iterator[tuple[SandboxServer, JiraSignals]]:
    signals = JiraSignals(jira_app(deployment=deployment))
    with SandboxServer(signals, name=f"jira-{deployment}") as server:
        yield server, signals


@pytest.fixture
def cloud() -> Iterator[tuple[SandboxServer, JiraSignals]]:
    yield from serve_signalling("cloud")


@pytest.fixture
def datacenter() -> Iterator[tuple[SandboxServer, JiraSignals]]:
    yield from serve_signalling("datacenter")


async def counts(jira: FastJira, n: int) -> None:
    readings = await asyncio.gather(
        *(
            jira.fetch_one(query(f"m{i}", jql="project = API", count="approximate"))
            for i in range(n)
        )
    )
    assert all(r.value == Decimal(90) for r in readings)


async def dc_counts(jira: FastJira, n: int) -> None:
    readings = await asyncio.gather(
        *(jira.fetch_one(query(f"m{i}", jql="project = API")) for i in range(n))
    )
    assert all(r.value == Decimal(90) for r in readings)


def span(server: SandboxServer, path_end: str) -> float:
    """Seconds between the first and the last matching request the fake received."""
    stamps = [r.at for r in server.requests if r.path.endswith(path_end)]
    return (max(stamps) - min(stamps)).total_seconds()


def rate(jira: FastJira) -> float:
    current = jira.client.budget.rate
    assert current is not None
    return current


async def test_default_pace_lets_105_searches_through_in_about_a_second(
    cloud: tuple[SandboxServer, JiraSignals],
) -> None:
    server, _ = cloud
    # The model's own default: no requests_per_second given.
    config = JiraConnection(
        type="jira", url=server.url, email=DEFAULT_EMAIL, api_token=DEFAULT_API_TOKEN
    )
    jira = FastJira("jira-test", config)
    try:
        await counts(jira, 105)
    finally:
        await jira.aclose()
    # Jira's documented 100/s after a burst of 5: (105 - 5) / 100 = 1.0 s at least; unpaced it is
    # ~0.2 s. (A busy machine only makes it longer, so only the pace's bound is asserted.)
    assert span(server, "/approximate-count") >= 0.8
    # The fake announced its documented limit (X-RateLimit-Limit: 100), the same as the ceiling.
    assert rate(jira) == config.requests_per_second == 100.0
    policy = jira.client.budget.policy
    assert (policy.requests_per_second, policy.burst, policy.max_concurrency) == (100.0, 5, 10)


async def test_near_limit_halves_the_pace_and_quiet_answers_win_it_back(
    cloud: tuple[SandboxServer, JiraSignals],
) -> None:
    server, signals = cloud
    jira = connect(server.url, requests_per_second=40)
    try:
        signals.headers = {"X-RateLimit-NearLimit": "true"}
        await counts(jira, 40)
        pressed = span(server, "/approximate-count")
        slowed = rate(jira)
        signals.headers = {}
        await counts(jira, 20)
    finally:
        await jira.aclose()
    # Halved on the first answer (20/s), again a second later (10/s): 5 + 20 requests in the
    # first second, 15 more in 1.5 s. Ignoring the header, 40/s takes (40 - 5) / 40 = 0.9 s.
    assert pressed >= 1.5
    assert slowed <= 10.0
    assert rate(jira) == 40.0  # 20 quiet answers, each worth 40 / 20 = 2 requests per second


async def test_a_burst_limit_429_slows_the_site_but_a_per_issue_429_does_not(
    cloud: tuple[SandboxServer, JiraSignals],
) -> None:
    server, _ = cloud
    jira = connect(server.url, requests_per_second=40)
    try:
        server.faults.add(
            Fault(
                kind=FaultKind.STATUS,
                status=429,
                retry_after="0",
                headers={"RateLimit-Reason": "jira-per-issue-on-write"},
                path=COUNT,
            )
        )
        await counts(jira, 1)
        after_per_issue = rate(jira)
        server.faults.add(
            Fault(
                kind=FaultKind.STATUS,
                status=429,
                retry_after="0",
                headers={"RateLimit-Reason": "jira-burst-based"},
                path=COUNT,
            )
        )
        await counts(jira, 1)
        after_burst = rate(jira)
    finally:
        await jira.aclose()
    assert after_per_issue == 40.0  # one issue's limit is the write spacer's business
    assert after_burst == 40.0 / 2 + 40.0 / 20  # halved, then one quiet answer (the retry)


async def test_data_center_announced_fill_rate_caps_the_pace(
    datacenter: tuple[SandboxServer, JiraSignals],
) -> None:
    server, signals = datacenter
    signals.headers = {
        "X-RateLimit-Limit": "20",
        "X-RateLimit-Remaining": "19",
        "X-RateLimit-FillRate": "10",
        "X-RateLimit-Interval-Seconds": "1",
    }
    jira = connect(server.url, deployment="datacenter", requests_per_second=40)
    try:
        await dc_counts(jira, 15)
    finally:
        await jira.aclose()
    # 10/s after the burst: (15 - 5) / 10 = 1.0 s; at the configured 40/s it would be 0.25 s.
    assert span(server, "/search") >= 0.7
    assert rate(jira) == 10.0
