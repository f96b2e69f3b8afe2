"""The example plugin against its sandbox Sentry on a loopback socket, found through its entry
point like any third-party connector."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from okrsync_sentry import SentryConnection, SentryQuery, SentrySource, connector
from okrsync_sentry.fake import ORGANIZATION, TOKEN, Issues, sentry_app

from okrsync.errors import CredentialsError, QueryError, VendorResponseError
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.sdk.models import CycleWindow, Query

CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
ANCHOR = datetime(2026, 12, 20, tzinfo=UTC)


class FastSource(SentrySource):
    initial_backoff = 0.01
    max_backoff = 0.02


@pytest.fixture
def issues() -> Issues:
    seeded = Issues()
    seeded.seed(1500, anchor=ANCHOR)
    return seeded


@pytest.fixture
def server(issues: Issues) -> Iterator[SandboxServer]:
    with SandboxServer(sentry_app(issues=issues), name="sentry") as running:
        yield running


def source(server: SandboxServer, token: str = TOKEN) -> SentrySource:
    config = SentryConnection(base_url=server.url, organization=ORGANIZATION, auth_token=token)
    return FastSource("sentry", config)


def ask(spec: SentryQuery) -> Query[SentryQuery]:
    return Query(Query.make_key("sentry", spec, CYCLE), "sentry", ("errors",), spec, CYCLE)


def expected(issues: Issues, status: str, measure: str) -> Decimal:
    start, end = "2026-10-01T00:00:00+00:00", "2026-12-31T23:59:59+00:00"
    seen = [
        i
        for i in issues.items
        if i["status"] == status
        and datetime.fromisoformat(i["firstSeen"]) <= datetime.fromisoformat(end)
        and datetime.fromisoformat(i["lastSeen"]) >= datetime.fromisoformat(start)
    ]
    if measure == "issues":
        return Decimal(len(seen))
    return sum((Decimal(i["count"]) for i in seen), Decimal(0))


def test_the_plugin_is_found_through_its_entry_point() -> None:
    assert load_registry().connectors["sentry"] is connector


@pytest.mark.parametrize("measure", ["issues", "events"])
async def test_counts_every_page_of_the_cycle(
    server: SandboxServer, issues: Issues, measure: str
) -> None:
    live = source(server)
    reading = await live.fetch_one(ask(SentryQuery(measure=measure)))
    await live.aclose()
    assert reading.error is None
    assert reading.value == expected(issues, "unresolved", measure)
    assert expected(issues, "unresolved", "issues") > 2 * 100  # three pages at least
    assert live.api_calls == reading.api_calls == len(server.requests) > 1


async def test_a_wrong_token_fails_the_reading_and_is_never_shown(server: SandboxServer) -> None:
    live = source(server, token="sntrys_wrong_secret")
    [reading] = await live.fetch([ask(SentryQuery())])
    await live.aclose()
    assert isinstance(reading.error, CredentialsError)
    assert "sntrys_wrong_secret" not in str(reading.error)


async def test_an_unknown_search_term_is_a_query_error(server: SandboxServer) -> None:
    live = source(server)
    [reading] = await live.fetch([ask(SentryQuery(query="assigned:me"))])
    await live.aclose()
    assert isinstance(reading.error, QueryError)
    assert "unsupported term" in str(reading.error)


async def test_a_repeated_cursor_stops_with_an_error_not_a_short_count(
    server: SandboxServer, issues: Issues
) -> None:
    issues.repeat_cursor = True
    live = source(server)
    [reading] = await live.fetch([ask(SentryQuery())])
    await live.aclose()
    assert isinstance(reading.error, VendorResponseError)
    assert "pagination loop" in str(reading.error)
    assert reading.value is None


async def test_rate_limited_pages_are_retried(server: SandboxServer, issues: Issues) -> None:
    issues.requests_per_second = 2
    live = source(server)
    reading = await live.fetch_one(ask(SentryQuery()))
    await live.aclose()
    assert reading.error is None
    assert reading.value == expected(issues, "unresolved", "issues")
    assert live.client.rate_limited > 0
    assert len(server.requests) == live.api_calls > reading.api_calls
