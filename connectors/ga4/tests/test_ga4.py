# ruff: noqa: E501 - Google error bodies kept on one line
"""The ga4 source against the sandbox token endpoint and Data API on a loopback socket.

Expected numbers are recomputed from the fake's own generator (``daily``) with Decimal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import product
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from connectors.ga4 import GA4Connection, GA4Query, GA4Source, connector
from connectors.ga4.fake import CHANNELS, COUNTRIES, GA4Data, daily, ga4_app
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

PROPERTY = "123456789"
OTHER = "987654321"
EMAIL = "okrsync@okr-project.iam.gserviceaccount.com"
CYCLE = CycleWindow("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
NOW = datetime.now(UTC)  # the fake checks iat/exp against its real clock
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


class FastSource(GA4Source):
    initial_backoff = 0.01
    max_backoff = 0.02
    offset = 0.0  # seconds added to NOW, to age tokens

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.offset)


@dataclass
class Fake:
    server: SandboxServer
    data: GA4Data

    @property
    def url(self) -> str:
        return self.server.url

    def key_json(self, private_key: str = PEM, email: str = EMAIL) -> str:
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "okr-project",
                "private_key_id": "k1",
                "private_key": private_key,
                "client_email": email,
                "client_id": "1",
                "token_uri": f"{self.url}/token",
            }
        )

    def report_requests(self) -> list[Any]:
        return [r for r in self.server.requests if r.path.startswith("/v1beta/")]

    def token_requests(self) -> int:
        return sum(1 for r in self.server.requests if r.path == "/token")


@pytest.fixture
def fake() -> Iterator[Fake]:
    data = GA4Data()
    data.register(EMAIL, _KEY.public_key(), {PROPERTY, OTHER})
    with SandboxServer(ga4_app(data=data), name="ga4") as server:
        yield Fake(server, data)


def make_source(fake: Fake, **fields: Any) -> FastSource:
    config = GA4Connection.model_validate(
        {
            "property_id": PROPERTY,
            "credentials_json": fake.key_json(),
            "api_url": fake.url,
            "max_retries": 2,
            **fields,
        }
    )
    return FastSource("web", config)


@pytest.fixture
async def source(fake: Fake) -> AsyncIterator[FastSource]:
    src = make_source(fake)
    yield src
    await src.aclose()


def query(metric: str, name: str | None = None, **spec: Any) -> Query[GA4Query]:
    model = GA4Query.model_validate({"metric": metric, **spec})
    return Query(Query.make_key("web", model, CYCLE), "web", (name or metric,), model, CYCLE)


def expected(
    metric: str,
    property_id: str = PROPERTY,
    countries: tuple[str, ...] = COUNTRIES,
    channels: tuple[str, ...] = CHANNELS,
    start: date = CYCLE.start,
    end: date = CYCLE.end,
) -> Decimal:
    total, day = Decimal(0), start
    while day <= end:
        for country, channel in product(countries, channels):
            total += daily(property_id, day, country, channel)[metric]
        day += timedelta(days=1)
    return total


# --- values and batching ---------------------------------------------------------------------


async def test_n_metrics_on_one_property_is_one_request(fake: Fake, source: FastSource) -> None:
    names = ["sessions", "activeUsers", "conversions", "totalRevenue"]
    readings = await source.fetch([query(m) for m in names])
    for name, reading in zip(names, readings, strict=True):
        assert reading.error is None, reading.error
        assert reading.value == expected(name), name
    assert readings[0].value and readings[0].value > 1000
    reports = fake.report_requests()
    assert len(reports) == 1 and reports[0].path == f"/v1beta/properties/{PROPERTY}:runReport"
    body = reports[0].json_body()
    assert [m["name"] for m in body["metrics"]] == names
    assert body["dateRanges"] == [{"startDate": "2026-07-01", "endDate": "2026-09-30"}]
    assert body["returnPropertyQuota"] is True
    assert reports[0].headers["authorization"].startswith("Bearer ya29.sbx-")
    assert fake.token_requests() == 1
    assert [r.api_calls for r in readings] == [1, 0, 0, 0]
    assert source.last_quota[PROPERTY]["tokensPerHour"]["remaining"] == 40_000 - 10


async def test_eleven_metrics_split_and_other_filters_use_batch(
    fake: Fake, source: FastSource
) -> None:
    france = {"filters": [{"field": "country", "value": "France"}]}
    paid = {"filters": [{"field": "sessionDefaultChannelGroup", "in_list": ["Paid Search"]}]}
    queries = [
        query("sessions", "fr_sessions", **france),
        query("conversions", "fr_conv", **france),
        query("sessions", "paid_sessions", **paid),
        query("sessions", "other_sessions", property_id=OTHER),
    ]
    readings = await source.fetch(queries)
    assert [r.value for r in readings] == [
        expected("sessions", countries=("France",)),
        expected("conversions", countries=("France",)),
        expected("sessions", channels=("Paid Search",)),
        expected("sessions", property_id=OTHER),
    ]
    paths = sorted(r.path for r in fake.report_requests())
    assert paths == [
        f"/v1beta/properties/{PROPERTY}:batchRunReports",
        f"/v1beta/properties/{OTHER}:runReport",
    ]
    batch = next(r for r in fake.report_requests() if "batch" in r.path).json_body()
    assert len(batch["requests"]) == 2
    assert batch["requests"][0]["dimensionFilter"] == {
        "filter": {
            "fieldName": "country",
            "stringFilter": {"matchType": "EXACT", "value": "France", "caseSensitive": False},
        }
    }
    assert fake.token_requests() == 1


async def test_more_than_ten_metrics_is_two_reports(fake: Fake, source: FastSource) -> None:
    filters = [{"field": "country", "value": c} for c in ("France",)]
    queries = [query("sessions", f"m{i}", filters=filters) for i in range(1)]
    # eleven distinct metrics cannot exist in the fake's catalogue: build the plan directly
    specs = [query(f"customEvent:e{i}", f"m{i}") for i in range(11)]
    reports, failed = source.plan(specs)
    assert not failed and [len(r.metrics) for r in reports] == [10, 1]
    assert queries  # the same metric twice shares one column
    same = source.plan([query("sessions", "a"), query("sessions", "b", dimensions=[])])[0]
    assert len(same) == 1 and same[0].metrics == ["sessions"]


async def test_dimensions_total_and_row_filter_with_pagination(fake: Fake) -> None:
    src = make_source(fake, page_size=20)
    try:
        readings = await src.fetch(
            [
                query("sessions", "total", dimensions=["date", "country"]),
                query(
                    "totalRevenue",
                    "de_revenue",
                    dimensions=["date", "country"],
                    row_filter={"country": "Germany"},
                ),
            ]
        )
    finally:
        await src.aclose()
    assert readings[0].value == expected("sessions")
    assert readings[1].value == expected("totalRevenue", countries=("Germany",))
    days = (CYCLE.end - CYCLE.start).days + 1
    pages = -(-(days * len(COUNTRIES)) // 20)
    reports = fake.report_requests()
    assert len(reports) == pages
    assert reports[0].json_body()["metricAggregations"] == ["TOTAL"]
    assert [r.json_body().get("offset") for r in reports[:3]] == [None, "20", "40"]
    assert readings[0].api_calls == pages


async def test_a_page_short_of_the_promised_row_count_is_an_error(fake: Fake) -> None:
    body = {"metricHeaders": [{"name": "sessions"}], "rows": [], "rowCount": 5}
    fake.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=200, body=json.dumps(body), path="runReport")
    )
    src = make_source(fake)
    try:
        [reading] = await src.fetch(
            [query("sessions", "de", dimensions=["country"], row_filter={"country": "Germany"})]
        )
    finally:
        await src.aclose()
    assert isinstance(reading.error, VendorResponseError)
    assert "promised 5 rows but the page at offset 0 is empty" in str(reading.error)


async def test_current_cycle_ends_today(fake: Fake, source: FastSource) -> None:
    today = NOW.date()
    current = CycleWindow("now", today - timedelta(days=3), today + timedelta(days=30))
    model = GA4Query(metric="sessions")
    await source.fetch([Query("k", "web", ("s",), model, current)])
    body = fake.report_requests()[0].json_body()
    start = current.start.isoformat()
    assert body["dateRanges"] == [{"startDate": start, "endDate": "today"}]
    future = CycleWindow("next", today + timedelta(days=1), today + timedelta(days=90))
    (failed,) = await source.fetch([Query("f", "web", ("s",), model, future)])
    assert failed.error is not None and "nothing to report yet" in str(failed.error)


# --- tokens ------------------------------------------------------------------------------------


async def test_token_cached_then_renewed_when_old(fake: Fake, source: FastSource) -> None:
    for _ in range(3):
        assert (await source.fetch_one(query("sessions"))).value == expected("sessions")
    assert fake.token_requests() == 1
    source.offset = 3599 - 60  # inside the renewal margin
    await source.fetch_one(query("sessions"))
    assert fake.token_requests() == 2


async def test_expired_token_refreshed_once(fake: Fake, source: FastSource) -> None:
    await source.fetch_one(query("sessions"))
    fake.data.revoke_tokens()
    reading = await source.fetch_one(query("conversions"))
    assert reading.value == expected("conversions")
    assert fake.token_requests() == 2
    statuses = [r.path for r in fake.server.requests]
    assert statuses.count("/token") == 2 and len(fake.report_requests()) == 3


async def test_jwt_is_signed_as_google_expects(fake: Fake, source: FastSource) -> None:
    await source.fetch_one(query("sessions"))
    form = next(r for r in fake.server.requests if r.path == "/token").body
    fields = dict(pair.split("=", 1) for pair in form.split("&"))
    assert fields["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    claims = jwt.decode(
        fields["assertion"], _KEY.public_key(), algorithms=["RS256"], audience=f"{fake.url}/token"
    )
    assert claims["iss"] == EMAIL and claims["exp"] - claims["iat"] == 3600
    assert claims["scope"] == "https://www.googleapis.com/auth/analytics.readonly"
    assert jwt.get_unverified_header(fields["assertion"])["kid"] == "k1"


async def test_wrong_key_is_a_credentials_error(fake: Fake) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    src = make_source(fake, credentials_json=fake.key_json(private_key=pem))
    try:
        (failed,) = await src.fetch([query("sessions", "web_sessions")])
    finally:
        await src.aclose()
    assert isinstance(failed.error, CredentialsError)
    text = str(failed.error)
    assert "connection 'web', metric 'web_sessions'" in text and "Invalid JWT Signature" in text
    assert "PRIVATE KEY" not in text


async def test_credentials_file(fake: Fake, tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(fake.key_json())
    src = make_source(fake, credentials_json=None, credentials_file=str(path))
    try:
        assert (await src.fetch_one(query("sessions"))).value == expected("sessions")
    finally:
        await src.aclose()
    missing = make_source(fake, credentials_json=None, credentials_file=str(tmp_path / "no"))
    (failed,) = await missing.fetch([query("sessions")])
    await missing.aclose()
    assert isinstance(failed.error, CredentialsError) and "cannot read" in str(failed.error)


# --- errors ------------------------------------------------------------------------------------


async def test_403_names_property_and_service_account(fake: Fake, source: FastSource) -> None:
    (failed,) = await source.fetch([query("sessions", property_id="555")])
    assert isinstance(failed.error, CredentialsError) and failed.error.status_code == 403
    text = str(failed.error)
    assert "connection 'web'" in text and "property 555" in text and EMAIL in text
    assert "PERMISSION_DENIED" in text


async def test_401_after_refresh_names_the_connection(fake: Fake, source: FastSource) -> None:
    body = json.dumps({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})  # fmt: skip
    fake.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=401, body=body, times=2, path=":run")
    )
    (failed,) = await source.fetch([query("sessions")])
    assert isinstance(failed.error, CredentialsError)
    assert "connection 'web', metric 'sessions'" in str(failed.error)
    assert "UNAUTHENTICATED" in str(failed.error) and fake.token_requests() == 2


async def test_bad_metric_is_a_query_error(fake: Fake, source: FastSource) -> None:
    (failed,) = await source.fetch([query("sesions", "bad")])
    assert isinstance(failed.error, QueryError)
    assert "INVALID_ARGUMENT" in str(failed.error) and "sesions" in str(failed.error)
    assert "metric 'bad'" in str(failed.error)


async def test_429_then_success_and_5xx_then_success(fake: Fake, source: FastSource) -> None:
    body = json.dumps({"error": {"code": 429, "message": "Too many concurrent requests.", "status": "RESOURCE_EXHAUSTED"}})  # fmt: skip
    fake.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=429, body=body, retry_after="1", path=":run")
    )
    started = datetime.now(UTC)
    assert (await source.fetch_one(query("sessions"))).value == expected("sessions")
    assert (datetime.now(UTC) - started).total_seconds() >= 0.9
    fake.server.faults.add(Fault(kind=FaultKind.STATUS, status=503, times=2, path=":run"))
    assert (await source.fetch_one(query("sessions"))).value == expected("sessions")
    assert len(fake.report_requests()) == 5
    fake.server.faults.add(Fault(kind=FaultKind.STATUS, status=500, times=-1, path=":run"))
    (failed,) = await source.fetch([query("sessions")])
    assert isinstance(failed.error, RetriableError)


async def test_quota_spent_pauses_the_property(fake: Fake, source: FastSource) -> None:
    fake.data.quota_hour[PROPERTY] = 10  # exactly one report left
    first = await source.fetch([query("sessions")])
    assert first[0].value == expected("sessions")
    (paused,) = await source.fetch([query("conversions")])
    assert isinstance(paused.error, QuotaExhaustedError)
    top_of_hour = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert paused.error.resume_at == top_of_hour.timestamp()
    assert "tokensPerHour" in str(paused.error) and len(fake.report_requests()) == 1
    other = await source.fetch([query("sessions", property_id=OTHER)])
    assert other[0].ok  # another property has its own quota
    source.offset = 3600.0  # the window turned for us...
    (refused,) = await source.fetch([query("conversions")])  # the fake's quota did not return
    assert isinstance(refused.error, QuotaExhaustedError) and refused.error.status_code == 429
    assert "Exhausted property tokens per hour" in str(refused.error)


@pytest.mark.parametrize("kind", [FaultKind.MALFORMED, FaultKind.HTML, FaultKind.TRUNCATED])
async def test_malformed_answers(fake: Fake, source: FastSource, kind: FaultKind) -> None:
    fake.server.faults.add(Fault(kind=kind, path=":run", times=3))
    (failed,) = await source.fetch([query("sessions")])
    assert isinstance(failed.error, VendorResponseError | RetriableError)
    assert "connection 'web', metric 'sessions'" in str(failed.error)


async def test_non_numeric_value(fake: Fake, source: FastSource) -> None:
    body = json.dumps({"metricHeaders": [{"name": "sessions", "type": "TYPE_INTEGER"}], "rows": [{"metricValues": [{"value": "n/a"}]}], "rowCount": 1})  # fmt: skip
    fake.server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body=body, path=":run"))
    (failed,) = await source.fetch([query("sessions")])
    assert isinstance(failed.error, VendorResponseError) and "not a number" in str(failed.error)


def test_models() -> None:
    assert connector.type == "ga4" and connector.query_model is GA4Query
    with pytest.raises(ValidationError, match="exactly one of credentials_json"):
        GA4Connection.model_validate({"property_id": "1"})
    with pytest.raises(ValidationError, match="property id"):
        GA4Connection.model_validate({"property_id": "abc", "credentials_file": "k.json"})
    assert GA4Connection(property_id="properties/42", credentials_file="k").property_id == "42"
    with pytest.raises(ValidationError, match="not in dimensions"):
        GA4Query.model_validate({"metric": "sessions", "row_filter": {"country": "France"}})
    with pytest.raises(ValidationError, match="exactly one of value or in_list"):
        GA4Query.model_validate({"metric": "sessions", "filters": [{"field": "country"}]})
    spec = GA4Query.model_validate(
        {
            "metric": "sessions",
            "dimensions": ["country"],
            "filters": [
                {"field": "country", "in_list": ["France", "Germany"]},
                {
                    "field": "sessionDefaultChannelGroup",
                    "value": "Paid",
                    "match_type": "BEGINS_WITH",
                },
            ],
        }
    )
    assert spec.query_text() == (
        "runReport sessions by country where country in (France, Germany) and "
        "sessionDefaultChannelGroup begins_with 'Paid' (TOTAL)"
    )
    assert "andGroup" in (spec.dimension_filter() or {})


def test_metrics_of_one_property_fall_due_together(source: FastSource) -> None:
    """The scheduler aligns on the request key: reports of one property, whatever their
    dimensions or filters, travel in one batchRunReports, so they tick together."""
    france = {"filters": [{"field": "country", "value": "France"}]}
    specs = [
        query("sessions", "a").spec,
        query("conversions", "b", **france).spec,
        query("sessions", "c", dimensions=["country"]).spec,
    ]
    assert len({source.request_key(spec) for spec in specs}) == 1
    assert source.request_key(query("sessions", "d", property_id=OTHER).spec) != (
        source.request_key(specs[0])
    )
