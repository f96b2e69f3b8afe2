"""The PostHog source against the sandbox PostHog on a loopback socket.

Expected numbers are counted here straight from the fake's seeded events (``EventData``), not
through the fake's HogQL evaluator, so a wrong date bound or a lost placeholder shows up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from connectors.posthog import PostHogConnection, PostHogQuery, PostHogSource, connector
from connectors.posthog.fake import EventData, posthog_app
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

KEY = "phx_test_9c1d7e3a5b"
PROJECT = 4242
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
PAGEVIEWS = (
    "SELECT count() FROM events WHERE event = '$pageview' "
    "AND toDate(timestamp) >= {cycle_start} AND toDate(timestamp) <= {cycle_end}"
)


class FastSource(PostHogSource):
    initial_backoff = 0.01
    max_backoff = 0.02
    rate_limit_backoff = 0.01


@dataclass
class Fake:
    server: SandboxServer
    data: EventData

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))


@pytest.fixture
def fake() -> Iterator[Fake]:
    app = posthog_app(key=KEY, project_id=PROJECT, anchor=ANCHOR)
    with SandboxServer(app, name="posthog") as server:
        yield Fake(server, app.state.data)


def make_source(fake: Fake, **overrides: Any) -> PostHogSource:
    config = PostHogConnection.model_validate(
        {
            "type": "posthog",
            "host": fake.server.url,
            "project_id": PROJECT,
            "personal_api_key": KEY,
            "queries_per_hour": 36000,
            "max_retries": 2,
            **overrides,
        }
    )
    return FastSource("product", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[PostHogSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(hogql: str = PAGEVIEWS, metric: str = "pageviews", **spec: Any) -> Query[PostHogQuery]:
    model = PostHogQuery.model_validate({"hogql": hogql, **spec})
    return Query(Query.make_key("product", model, CYCLE), "product", (metric,), model, CYCLE)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def expected(data: EventData, event: str, *, distinct: bool = False) -> int:
    people = [p for d in days(CYCLE.start, CYCLE.end) for p in data.people(event, d)]
    return len(set(people)) if distinct else len(people)


# --- values ----------------------------------------------------------------------------------


async def test_count_over_the_cycle_is_exact(fake: Fake, source: PostHogSource) -> None:
    reading = await source.fetch_one(query())
    assert reading.value == expected(fake.data, "$pageview") > 0
    assert reading.api_calls == 1 and source.api_calls == 1
    assert reading.query_text == PAGEVIEWS
    assert reading.raw_digest.startswith("sha256:")
    sent = fake.server.requests[-1]
    assert sent.method == "POST" and sent.path == f"/api/projects/{PROJECT}/query/"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json_body()
    assert body["query"]["kind"] == "HogQLQuery"
    assert body["query"]["query"] == PAGEVIEWS  # dates never pasted into the text
    assert body["query"]["values"] == {
        "cycle_start": "2026-10-01",
        "cycle_end": "2026-12-31",
        "cycle_id": "2026-Q4",
    }


async def test_distinct_people_and_own_values(fake: Fake, source: PostHogSource) -> None:
    hogql = (
        "SELECT count(DISTINCT person_id) FROM events WHERE event = {name} "
        "AND timestamp >= {cycle_start} AND timestamp < '2027-01-01'"
    )
    reading = await source.fetch_one(query(hogql, values={"name": "signed_up"}))
    assert reading.value == expected(fake.data, "signed_up", distinct=True) > 0


async def test_timestamp_le_end_date_excludes_the_last_day(
    fake: Fake, source: PostHogSource
) -> None:
    # ClickHouse compares a DateTime with '2026-12-31' at midnight: the last day is left out.
    hogql = (
        "SELECT count() FROM events WHERE event = 'signed_up' "
        "AND timestamp >= {cycle_start} AND timestamp <= {cycle_end}"
    )
    reading = await source.fetch_one(query(hogql))
    last_day = len(fake.data.people("signed_up", CYCLE.end))
    assert reading.value == expected(fake.data, "signed_up") - last_day


async def test_value_follows_new_events(fake: Fake, source: PostHogSource) -> None:
    before = await source.fetch_one(query())
    fake.data.add("$pageview", date(2026, 11, 5))
    after = await source.fetch_one(query())
    assert after.value is not None and before.value is not None
    assert after.value - before.value == 1


# --- failures --------------------------------------------------------------------------------


async def test_429_then_success_honours_retry_after(fake: Fake, source: PostHogSource) -> None:
    body = json.dumps(
        {
            "type": "throttled_error",
            "code": "throttled",
            "detail": "Request was throttled. Expected available in 1 second.",
            "attr": None,
        }
    )
    fake.fault(FaultKind.STATUS, status=429, retry_after="1", body=body)
    reading = await source.fetch_one(query())
    assert reading.value == expected(fake.data, "$pageview")
    first, second = fake.server.requests[-2:]
    assert (second.at - first.at).total_seconds() >= 0.9
    assert source.api_calls == 2


async def test_5xx_then_success(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.STATUS, status=502, times=2)
    reading = await source.fetch_one(query())
    assert reading.value == expected(fake.data, "$pageview")
    assert source.api_calls == 3


async def test_5xx_forever_gives_up(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.STATUS, status=503, times=-1)
    with pytest.raises(RetriableError, match="gave up after 3 attempts"):
        await source.fetch_one(query())


async def test_401_names_connection_and_hides_the_key(fake: Fake) -> None:
    src = make_source(fake, personal_api_key="phx_wrong_0123456789")
    try:
        [reading] = await src.fetch([query()])
    finally:
        await src.aclose()
    error = reading.error
    assert isinstance(error, CredentialsError) and error.status_code == 401
    text = str(error)
    assert "connection 'product'" in text and "metric 'pageviews'" in text
    assert "authentication_failed" in text and "phx_wrong" not in text
    assert src.api_calls == 1  # no retry of rejected credentials


async def test_wrong_project_is_permission_denied(fake: Fake) -> None:
    src = make_source(fake, project_id=1)
    try:
        with pytest.raises(CredentialsError, match="permission_denied"):
            await src.fetch_one(query())
    finally:
        await src.aclose()


async def test_hogql_error_is_a_query_error_naming_the_metric(
    fake: Fake, source: PostHogSource
) -> None:
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query("SELEC count() FROM events", metric="broken"))
    text = str(caught.value)
    assert "metric 'broken'" in text and "Syntax error" in text and "syntax_error" in text


async def test_malformed_body(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.MALFORMED)
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await source.fetch_one(query())


async def test_html_page_from_a_proxy(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.HTML)
    with pytest.raises(VendorResponseError, match="HTML page"):
        await source.fetch_one(query())


async def test_wrong_shape_and_empty_results(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.STATUS, status=200, body='{"columns": ["count()"]}')
    with pytest.raises(VendorResponseError, match="no 'results'"):
        await source.fetch_one(query())
    empty = "SELECT count() FROM events WHERE event = 'x' LIMIT 0"
    with pytest.raises(QueryError, match="no rows"):
        await source.fetch_one(query(empty))
    reading = await source.fetch_one(query(empty, empty_is_zero=True))
    assert reading.value == 0


async def test_secret_never_in_errors(fake: Fake, source: PostHogSource) -> None:
    fake.fault(FaultKind.STATUS, status=400, body=json.dumps({"detail": f"bad key {KEY}"}))
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query())
    assert KEY not in str(caught.value)


async def test_query_allowance_pauses_the_connection(fake: Fake) -> None:
    src = make_source(fake, queries_per_hour=120, burst=1, max_wait=2)
    try:
        await src.fetch_one(query())
        with pytest.raises(QuotaExhaustedError) as caught:
            await src.fetch_one(query())
    finally:
        await src.aclose()
    assert caught.value.resume_at is not None
    assert "connection 'product'" in str(caught.value)
    assert len(fake.server.requests) == 1


async def test_the_fakes_own_throttle_speaks_drf() -> None:
    app = posthog_app(key=KEY, project_id=PROJECT, anchor=ANCHOR, queries_per_hour=1)
    with SandboxServer(app) as server:
        config = PostHogConnection(
            host=server.url,
            project_id=PROJECT,
            personal_api_key=SecretStr(KEY),
            queries_per_hour=36000,
            max_retries=0,
        )
        src = FastSource("product", config)
        try:
            await src.fetch_one(query())
            with pytest.raises(RetriableError, match="throttled") as caught:
                await src.fetch_one(query())
        finally:
            await src.aclose()
    assert caught.value.status_code == 429


# --- models ----------------------------------------------------------------------------------


def test_models() -> None:
    config = PostHogConnection.model_validate(
        {"type": "posthog", "host": "eu", "project_id": 1, "personal_api_key": "phx_1"}
    )
    assert config.base_url == "https://eu.posthog.com"
    assert "phx_1" not in repr(config) and config.secret_values() == ["phx_1"]
    with pytest.raises(ValidationError):
        PostHogConnection.model_validate(
            {"type": "posthog", "host": "posthog", "project_id": 1, "personal_api_key": "k"}
        )
    with pytest.raises(ValidationError, match="set from the cycle"):
        PostHogQuery.model_validate({"hogql": "SELECT 1", "values": {"cycle_start": "x"}})
    assert connector.type == "posthog" and connector.query_model is PostHogQuery
    assert connector.fake is not None
