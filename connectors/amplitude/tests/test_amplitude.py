"""The Amplitude source against the sandbox Dashboard REST API on a loopback socket.

Expected numbers are counted here from the fake's seeded occurrences, never through the fake's
own bucketing, so a lost day or a double-counted user shows up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import ValidationError

from connectors.amplitude import AmplitudeConnection, AmplitudeQuery, AmplitudeSource, connector
from connectors.amplitude.fake import EventData, amplitude_app
from okrsync.errors import (
    CredentialsError,
    QueryError,
    RateLimitedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

API_KEY = "0123456789abcdef0123456789abcdef"
SECRET_KEY = "fedcba9876543210fedcba9876543210"
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


class FastSource(AmplitudeSource):
    initial_backoff = 0.01
    max_backoff = 0.02
    rate_limit_backoff = 0.01


@dataclass
class Fake:
    server: SandboxServer
    data: EventData
    app: Any

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))


@pytest.fixture
def fake() -> Iterator[Fake]:
    app = amplitude_app(api_key=API_KEY, secret_key=SECRET_KEY, anchor=ANCHOR)
    with SandboxServer(app, name="amplitude") as server:
        yield Fake(server, app.state.data, app)


def make_source(fake: Fake, **overrides: Any) -> AmplitudeSource:
    config = AmplitudeConnection.model_validate(
        {
            "type": "amplitude",
            "region": fake.server.url,
            "api_key": API_KEY,
            "secret_key": SECRET_KEY,
            "max_retries": 2,
            **overrides,
        }
    )
    return FastSource("amp", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[AmplitudeSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(name: str = "plays", **spec: Any) -> Query[AmplitudeQuery]:
    model = AmplitudeQuery.model_validate({"event_type": "Play Song", **spec})
    return Query(Query.make_key("amp", model, CYCLE), "amp", (name,), model, CYCLE)


def cycle_users(data: EventData, event: str) -> list[str]:
    days = [CYCLE.start + timedelta(days=n) for n in range((CYCLE.end - CYCLE.start).days + 1)]
    return [u for d in days for u in data.users(event, d)]


# --- values ----------------------------------------------------------------------------------


async def test_totals_over_the_cycle(fake: Fake, source: AmplitudeSource) -> None:
    reading = await source.fetch_one(query(metric="totals"))
    assert reading.value == len(cycle_users(fake.data, "Play Song")) > 0
    assert reading.api_calls == 1
    sent = fake.server.requests[-1]
    assert sent.path == "/api/2/events/segmentation"
    assert dict(parse_qsl(sent.query)) == {
        "e": '{"event_type":"Play Song"}',
        "start": "20261001",
        "end": "20261231",
        "m": "totals",
        "i": "1",
    }
    assert sent.headers["authorization"].startswith("Basic ")


async def test_uniques_use_the_collapsed_value(fake: Fake, source: AmplitudeSource) -> None:
    reading = await source.fetch_one(query("signups", event_type="Sign Up", metric="uniques"))
    users = cycle_users(fake.data, "Sign Up")
    assert reading.value == len(set(users))
    assert len(set(users)) < len(users)  # the data does repeat users, so summing would be wrong


async def test_weekly_buckets_give_the_same_total(fake: Fake, source: AmplitudeSource) -> None:
    reading = await source.fetch_one(query(metric="totals", interval="week"))
    assert reading.value == len(cycle_users(fake.data, "Play Song"))


async def test_totals_without_collapsed_sum_the_series(fake: Fake, source: AmplitudeSource) -> None:
    body = {"data": {"series": [[3, 4, 5]], "seriesLabels": [0], "xValues": ["a", "b", "c"]}}
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(body))
    reading = await source.fetch_one(query(metric="totals"))
    assert reading.value == 12
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(body))
    with pytest.raises(VendorResponseError, match="seriesCollapsed"):
        await source.fetch_one(query(metric="uniques"))


# --- failures --------------------------------------------------------------------------------


async def test_429_then_success_honours_retry_after(fake: Fake, source: AmplitudeSource) -> None:
    fake.fault(FaultKind.STATUS, status=429, retry_after="1", body="Exceeded concurrent limit")
    reading = await source.fetch_one(query(metric="totals"))
    assert reading.value == len(cycle_users(fake.data, "Play Song"))
    first, second = fake.server.requests[-2:]
    assert (second.at - first.at).total_seconds() >= 0.9


async def test_5xx_then_success(fake: Fake, source: AmplitudeSource) -> None:
    fake.fault(FaultKind.STATUS, status=504, times=2)
    reading = await source.fetch_one(query(metric="totals"))
    assert reading.value == len(cycle_users(fake.data, "Play Song"))
    assert source.api_calls == 3


async def test_401_names_connection_and_hides_the_keys(fake: Fake) -> None:
    src = make_source(fake, secret_key="wrong-secret-key-000000000000000")
    try:
        [reading] = await src.fetch([query()])
    finally:
        await src.aclose()
    assert isinstance(reading.error, CredentialsError) and reading.error.status_code == 401
    text = str(reading.error)
    assert "connection 'amp'" in text and "metric 'plays'" in text
    assert "wrong-secret" not in text and API_KEY not in text
    assert src.api_calls == 1


async def test_bad_query_is_a_query_error(fake: Fake, source: AmplitudeSource) -> None:
    long = CycleWindow("2026", date(2025, 12, 1), date(2026, 12, 31))
    model = AmplitudeQuery(event_type="Play Song")
    q = Query(Query.make_key("amp", model, long), "amp", ("yearly",), model, long)
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(q)
    assert "metric 'yearly'" in str(caught.value) and "365 days" in str(caught.value)


async def test_malformed_and_wrong_shape(fake: Fake, source: AmplitudeSource) -> None:
    fake.fault(FaultKind.MALFORMED)
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await source.fetch_one(query())
    fake.fault(FaultKind.STATUS, status=200, body='{"series": []}')
    with pytest.raises(VendorResponseError, match="no 'data'"):
        await source.fetch_one(query())
    bad = {"data": {"series": [[1, 2]], "seriesCollapsed": [[{"setId": "", "value": 5}]]}}
    fake.fault(FaultKind.STATUS, status=200, body=json.dumps(bad))
    with pytest.raises(VendorResponseError, match="sum to 3"):
        await source.fetch_one(query(metric="totals"))


async def test_secret_never_in_errors(fake: Fake, source: AmplitudeSource) -> None:
    fake.fault(FaultKind.STATUS, status=400, body=f"bad key {API_KEY}:{SECRET_KEY}")
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query())
    assert API_KEY not in str(caught.value) and SECRET_KEY not in str(caught.value)


async def test_concurrency_stays_within_five(fake: Fake) -> None:
    fake.app.state.api.delay = 0.2
    src = make_source(fake)
    try:
        readings = await src.fetch(
            [query(f"m{n}", interval=i) for n, i in enumerate(["day", "week", "month"] * 3)]
        )
    finally:
        await src.aclose()
    assert len({r.key for r in readings}) == 3 and all(r.ok for r in readings)
    assert fake.app.state.api.peak_in_flight <= 5


async def test_the_fakes_cost_budget_answers_429(fake: Fake) -> None:
    app = amplitude_app(api_key=API_KEY, secret_key=SECRET_KEY, anchor=ANCHOR, hourly_cost=100)
    with SandboxServer(app) as server:
        src = make_source(Fake(server, app.state.data, app), max_retries=0)
        try:
            await src.fetch_one(query())
            with pytest.raises(RateLimitedError, match="query of cost 92"):
                await src.fetch_one(query())
        finally:
            await src.aclose()


async def test_5xx_forever_gives_up(fake: Fake, source: AmplitudeSource) -> None:
    fake.fault(FaultKind.STATUS, status=500, times=-1)
    with pytest.raises(RetriableError, match="gave up"):
        await source.fetch_one(query())


# --- models ----------------------------------------------------------------------------------


def test_models() -> None:
    config = AmplitudeConnection.model_validate(
        {"type": "amplitude", "region": "eu", "api_key": "k1", "secret_key": "s1"}
    )
    assert config.base_url == "https://analytics.eu.amplitude.com"
    assert "s1" not in repr(config) and sorted(config.secret_values()) == ["k1", "s1"]
    with pytest.raises(ValidationError):
        AmplitudeConnection.model_validate(
            {"type": "amplitude", "region": "asia", "api_key": "k", "secret_key": "s"}
        )
    assert AmplitudeQuery(event_type='Say "hi"').event_json() == '{"event_type":"Say \\"hi\\""}'
    assert connector.type == "amplitude" and connector.fake is not None
