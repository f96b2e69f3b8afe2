"""The Mixpanel source against the sandbox Query API on a loopback socket.

Expected numbers are counted here from the fake's seeded occurrences; what the source sent and
what the fake answered are both checked against Mixpanel's published OpenAPI description.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import ValidationError

from connectors.mixpanel import MixpanelConnection, MixpanelQuery, MixpanelSource, connector
from connectors.mixpanel.fake import EventData, mixpanel_app
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RateLimitedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

USER = "okr-reader.9f8e7d.mp-service-account"
SECRET = "mp-secret-5d4c3b2a1f"
PROJECT = 31337
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
# Mixpanel's description, kept beside the connector (source and licence: contracts/SOURCE.md)
CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "query.openapi.yaml"


class FastSource(MixpanelSource):
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
    app = mixpanel_app(username=USER, secret=SECRET, project_id=PROJECT, anchor=ANCHOR)
    with SandboxServer(app, name="mixpanel") as server:
        yield Fake(server, app.state.data, app)


def make_source(fake: Fake, **overrides: Any) -> MixpanelSource:
    config = MixpanelConnection.model_validate(
        {
            "type": "mixpanel",
            "region": fake.server.url,
            "project_id": PROJECT,
            "service_account_username": USER,
            "service_account_secret": SECRET,
            "queries_per_hour": 36000,
            "max_retries": 2,
            **overrides,
        }
    )
    return FastSource("mp", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[MixpanelSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(metric: str = "signups", **spec: Any) -> Query[MixpanelQuery]:
    model = MixpanelQuery.model_validate({"event": "Signed up", **spec})
    return Query(Query.make_key("mp", model, CYCLE), "mp", (metric,), model, CYCLE)


def cycle_rows(data: EventData, event: str, plan: str | None = None) -> list[tuple[str, str]]:
    days = [CYCLE.start + timedelta(days=n) for n in range((CYCLE.end - CYCLE.start).days + 1)]
    return [r for d in days for r in data.occurrences(event, d) if plan is None or r[1] == plan]


# --- values ----------------------------------------------------------------------------------


async def test_general_count_sums_every_day(fake: Fake, source: MixpanelSource) -> None:
    reading = await source.fetch_one(query())
    assert reading.value == len(cycle_rows(fake.data, "Signed up")) > 0
    assert reading.api_calls == 1
    sent = fake.server.requests[-1]
    assert sent.path == "/api/query/segmentation"
    params = dict(parse_qsl(sent.query))
    assert params == {
        "project_id": str(PROJECT),
        "event": "Signed up",
        "from_date": "2026-10-01",
        "to_date": "2026-12-31",
        "type": "general",
        "unit": "day",
    }


async def test_unique_people_are_not_summed_over_days(fake: Fake, source: MixpanelSource) -> None:
    reading = await source.fetch_one(query("active", event="Viewed report", type="unique"))
    people = {user for user, _ in cycle_rows(fake.data, "Viewed report")}
    assert reading.value == len(people)
    assert dict(parse_qsl(fake.server.requests[-1].query))["interval"] == "92"


async def test_where_filter_is_passed_and_applied(fake: Fake, source: MixpanelSource) -> None:
    where = 'properties["plan"] == "pro"'
    reading = await source.fetch_one(query(where=where))
    assert reading.value == len(cycle_rows(fake.data, "Signed up", plan="pro")) > 0
    assert dict(parse_qsl(fake.server.requests[-1].query))["where"] == where


async def test_event_missing_from_the_answer_is_zero(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=200,
        body=json.dumps({"data": {"series": [], "values": {}}, "legend_size": 0}),
    )
    reading = await source.fetch_one(query())
    assert reading.value == 0


# --- the allowance ---------------------------------------------------------------------------


async def test_budget_pauses_instead_of_spending_the_hour(fake: Fake) -> None:
    src = make_source(fake, queries_per_hour=60, burst=2, max_wait=5)
    try:
        readings = await src.fetch(
            [
                query(f"m{n}", event=e)
                for n, e in enumerate(["Signed up", "Viewed report", "Upgraded plan"])
            ]
        )
    finally:
        await src.aclose()
    ok = [r for r in readings if r.ok]
    paused = [r for r in readings if isinstance(r.error, QuotaExhaustedError)]
    assert len(ok) == 2 and len(paused) == 1
    assert paused[0].error is not None and "pausing the connection" in str(paused[0].error)
    assert len(fake.server.requests) == 2


async def test_never_more_than_five_at_once(fake: Fake) -> None:
    fake.app.state.api.delay = 0.2
    src = make_source(fake, max_concurrency=5)
    try:
        queries = [query(f"m{n}", where=f'properties["plan"] == "p{n}"') for n in range(8)]
        readings = await src.fetch(queries)
    finally:
        await src.aclose()
    assert all(r.ok for r in readings)
    assert fake.app.state.api.peak_in_flight == 5


async def test_the_fakes_hourly_limit_answers_429(fake: Fake) -> None:
    app = mixpanel_app(
        username=USER, secret=SECRET, project_id=PROJECT, anchor=ANCHOR, queries_per_hour=1
    )
    with SandboxServer(app) as server:
        src = make_source(Fake(server, app.state.data, app), max_retries=0)
        try:
            await src.fetch_one(query())
            with pytest.raises(RateLimitedError, match="60 queries per hour"):
                await src.fetch_one(query())
        finally:
            await src.aclose()


# --- failures --------------------------------------------------------------------------------


async def test_429_then_success_honours_retry_after(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=429,
        retry_after="1",
        body='{"request": "/api/query/segmentation", "error": "rate limited"}',
    )
    reading = await source.fetch_one(query())
    assert reading.value == len(cycle_rows(fake.data, "Signed up"))
    first, second = fake.server.requests[-2:]
    assert (second.at - first.at).total_seconds() >= 0.9


async def test_5xx_then_success(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(FaultKind.STATUS, status=500, times=2)
    reading = await source.fetch_one(query())
    assert reading.value == len(cycle_rows(fake.data, "Signed up"))
    assert source.api_calls == 3


async def test_5xx_forever_gives_up(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(FaultKind.STATUS, status=503, times=-1)
    with pytest.raises(RetriableError, match="gave up after 3 attempts"):
        await source.fetch_one(query())


async def test_401_names_connection_and_hides_the_secret(fake: Fake) -> None:
    src = make_source(fake, service_account_secret="mp-wrong-secret-77")
    try:
        [reading] = await src.fetch([query()])
    finally:
        await src.aclose()
    assert isinstance(reading.error, CredentialsError) and reading.error.status_code == 401
    text = str(reading.error)
    assert "connection 'mp'" in text and "metric 'signups'" in text
    assert "Invalid service account credentials" in text and "mp-wrong-secret-77" not in text
    assert src.api_calls == 1


async def test_bad_where_is_a_query_error_naming_the_metric(
    fake: Fake, source: MixpanelSource
) -> None:
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query("pro_signups", where="plan = pro"))
    assert "metric 'pro_signups'" in str(caught.value)
    assert "Unable to parse 'where'" in str(caught.value)


async def test_malformed_and_wrong_shape(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(FaultKind.MALFORMED)
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await source.fetch_one(query())
    fake.fault(FaultKind.STATUS, status=200, body='{"legend_size": 1}')
    with pytest.raises(VendorResponseError, match=r"data\.values"):
        await source.fetch_one(query())
    fake.fault(FaultKind.TRUNCATED)  # a cut connection is transient: retried, then right
    reading = await source.fetch_one(query())
    assert reading.value == len(cycle_rows(fake.data, "Signed up"))


async def test_secret_never_in_errors(fake: Fake, source: MixpanelSource) -> None:
    fake.fault(FaultKind.STATUS, status=400, body=json.dumps({"error": f"bad {SECRET}"}))
    with pytest.raises(QueryError) as caught:
        await source.fetch_one(query())
    assert SECRET not in str(caught.value)


# --- the contract ----------------------------------------------------------------------------


def _openapi() -> Any:
    from openapi_core import OpenAPI

    from okrsync.config import read_yaml  # YAML 1.2, as the contract is written

    return OpenAPI.from_dict(read_yaml(CONTRACT.read_text(), filename=str(CONTRACT)).data)


async def test_requests_and_answers_match_mixpanels_openapi(
    fake: Fake, source: MixpanelSource
) -> None:
    from openapi_core.testing import MockRequest, MockResponse

    spec = _openapi()
    await source.fetch_one(query())
    await source.fetch_one(
        query(event="Viewed report", type="unique", where='properties["plan"] == "free"')
    )
    records = fake.server.requests
    assert len(records) == 2
    async with httpx.AsyncClient(base_url=fake.server.url) as client:
        for record in records:
            request = MockRequest(
                "https://mixpanel.com",
                "get",
                "/api/query/segmentation",
                args=dict(parse_qsl(record.query)),
                headers={"Authorization": record.headers["authorization"]},
            )
            spec.validate_request(request)
            answer = await client.get(
                f"{record.path}?{record.query}",
                headers={"Authorization": record.headers["authorization"]},
            )
            assert answer.status_code == 200
            spec.validate_response(request, MockResponse(answer.content))


# --- models ----------------------------------------------------------------------------------


def test_models() -> None:
    config = MixpanelConnection.model_validate(
        {
            "type": "mixpanel",
            "region": "eu",
            "project_id": 1,
            "service_account_username": "u",
            "service_account_secret": "s3cr3t",
        }
    )
    assert config.base_url == "https://eu.mixpanel.com"
    assert "s3cr3t" not in repr(config) and config.secret_values() == ["s3cr3t"]
    with pytest.raises(ValidationError):
        MixpanelConnection.model_validate(
            {**config.model_dump(), "region": "mars", "service_account_secret": "x"}
        )
    with pytest.raises(ValidationError):
        MixpanelConnection.model_validate(
            {**config.model_dump(), "max_concurrency": 6, "service_account_secret": "x"}
        )
    assert MixpanelQuery(event="Signed up", type="unique").query_text() == (
        "segmentation unique count of 'Signed up' over the cycle"
    )
    assert connector.type == "mixpanel" and connector.fake is not None
