"""The prometheus source against the sandbox fake on a loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from connectors.prometheus import PrometheusConnection, PrometheusQuery, PrometheusSource, connector
from connectors.prometheus.fake import prometheus_app
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

TOKEN = "prom-tok-7c1e55d0a9"
CYCLE = CycleWindow("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FastSource(PrometheusSource):
    initial_backoff = 0.01
    max_backoff = 0.02

    def now(self) -> datetime:
        return NOW


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(prometheus_app(bearer_token=TOKEN), name="prometheus") as srv:
        yield srv


def make_source(server: SandboxServer, token: str = TOKEN, **fields: Any) -> PrometheusSource:
    config = PrometheusConnection.model_validate(
        {"url": server.url, "auth": {"type": "bearer", "token": token}, "max_retries": 2, **fields}
    )
    return FastSource("prom", config)


@pytest.fixture
async def source(server: SandboxServer) -> AsyncIterator[PrometheusSource]:
    src = make_source(server)
    yield src
    await src.aclose()


def query(text: str, metric: str = "checkout_p95", **spec: Any) -> Query[PrometheusQuery]:
    model = PrometheusQuery.model_validate({"query": text, **spec})
    return Query(Query.make_key("prom", model, CYCLE), "prom", (metric,), model, CYCLE)


def sent(server: SandboxServer, index: int = -1) -> dict[str, list[str]]:
    return parse_qs(server.requests[index].query)


async def test_one_series_vector(server: SandboxServer, source: PrometheusSource) -> None:
    reading = await source.fetch_one(query('checkout_latency_p95_ms{region="eu"}'))
    assert reading.value == Decimal("241.5")
    assert reading.api_calls == 1 and source.api_calls == 1
    assert reading.raw_digest.startswith("sha256:")
    params = sent(server)
    assert params["query"] == ['checkout_latency_p95_ms{region="eu"}']
    assert params["time"] == [f"{NOW.timestamp():.3f}"]
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_scalar(source: PrometheusSource) -> None:
    reading = await source.fetch_one(query('scalar(availability_ratio{job="api"})'))
    assert reading.value == Decimal("0.99942")


async def test_several_series_need_an_aggregate(source: PrometheusSource) -> None:
    (failed,) = await source.fetch([query("checkout_latency_p95_ms")])
    assert isinstance(failed.error, QueryError)
    text = str(failed.error)
    assert "connection 'prom'" in text and "metric 'checkout_p95'" in text
    assert "3 series" in text and 'region="eu"' in text and "aggregate" in text
    for aggregate, expected in [
        ("max", Decimal("310")),
        ("min", Decimal("241.5")),
        ("sum", Decimal("838.75")),
        ("avg", Decimal("838.75") / 3),
        ("first", Decimal("241.5")),
    ]:
        reading = await source.fetch_one(query("checkout_latency_p95_ms", aggregate=aggregate))
        assert reading.value == expected, aggregate
    assert query("x", aggregate="sum").spec.query_text() == "x (sum over series)"


async def test_empty_vector_is_missing_not_zero(source: PrometheusSource) -> None:
    (failed,) = await source.fetch([query('checkout_latency_p95_ms{region="mars"}')])
    assert failed.value is None and isinstance(failed.error, VendorResponseError)
    assert "no series matched" in str(failed.error) and "checkout_p95" in str(failed.error)


@pytest.mark.parametrize("text", ["NaN", "+Inf", 'idle_quantile{job="batch"}'])
async def test_nan_and_inf_are_errors(source: PrometheusSource, text: str) -> None:
    (failed,) = await source.fetch([query(text)])
    assert isinstance(failed.error, VendorResponseError)
    assert "not a usable number" in str(failed.error)


async def test_bad_query_is_a_query_error(source: PrometheusSource) -> None:
    (failed,) = await source.fetch([query("sum(rate(orders_total[5m])")])
    assert isinstance(failed.error, QueryError) and failed.error.status_code == 400
    text = str(failed.error)
    assert "connection 'prom', metric 'checkout_p95'" in text
    assert "bad_data" in text and "parse error" in text


async def test_cycle_end_and_cycle_range(server: SandboxServer, source: PrometheusSource) -> None:
    reading = await source.fetch_one(query('sum(orders_total{job="shop"})', at="cycle_end"))
    assert reading.value == 2034
    end = datetime(2026, 10, 1, tzinfo=UTC)
    assert sent(server)["time"] == [f"{end.timestamp():.3f}"]
    assert "time=2026-10-01T00:00:00Z" in reading.query_text
    await source.fetch([query("increase(orders_total[{cycle_range}])", at="cycle_end")])
    assert sent(server)["query"] == [f"increase(orders_total[{92 * 86400}s])"]


async def test_422_and_503(server: SandboxServer, source: PrometheusSource) -> None:
    body = '{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}'
    server.faults.add(Fault(kind=FaultKind.STATUS, status=422, body=body))
    (failed,) = await source.fetch([query("up")])
    assert isinstance(failed.error, QueryError) and "many-to-many" in str(failed.error)
    timeout = (
        '{"status":"error","errorType":"timeout","error":"query timed out in query execution"}'
    )
    server.faults.add(Fault(kind=FaultKind.STATUS, status=503, body=timeout, times=1))
    reading = await source.fetch_one(query("up"))
    assert reading.value == 1 and len(server.requests) == 3
    server.faults.add(Fault(kind=FaultKind.STATUS, status=503, body=timeout, times=-1))
    (gave_up,) = await source.fetch([query("up")])
    assert isinstance(gave_up.error, RetriableError) and "gave up after 3 attempts" in str(
        gave_up.error
    )


async def test_429_then_success_honours_retry_after(
    server: SandboxServer, source: PrometheusSource
) -> None:
    server.faults.add(Fault(kind=FaultKind.STATUS, status=429, retry_after="1"))
    started = datetime.now(UTC)
    reading = await source.fetch_one(query("up"))
    assert reading.value == 1 and len(server.requests) == 2
    assert (datetime.now(UTC) - started).total_seconds() >= 0.9


async def test_5xx_then_success(server: SandboxServer, source: PrometheusSource) -> None:
    server.faults.add(Fault(kind=FaultKind.STATUS, status=502, times=2))
    reading = await source.fetch_one(query("up"))
    assert reading.value == 1 and source.api_calls == 3


async def test_401_names_the_connection_and_hides_the_token(server: SandboxServer) -> None:
    src = make_source(server, token="wrong-token-123456")
    try:
        (failed,) = await src.fetch([query("up")])
    finally:
        await src.aclose()
    assert isinstance(failed.error, CredentialsError)
    assert "connection 'prom'" in str(failed.error) and "wrong-token" not in str(failed.error)


async def test_basic_auth() -> None:
    with SandboxServer(prometheus_app(basic=("okr", "s3cret-pw"))) as srv:
        config = PrometheusConnection.model_validate(
            {"url": srv.url, "auth": {"type": "basic", "username": "okr", "password": "s3cret-pw"}}
        )
        src = FastSource("prom", config)
        try:
            assert (await src.fetch_one(query("vector(7)"))).value == 7
        finally:
            await src.aclose()


@pytest.mark.parametrize("kind", [FaultKind.MALFORMED, FaultKind.HTML, FaultKind.EMPTY])
async def test_malformed_bodies(
    server: SandboxServer, source: PrometheusSource, kind: FaultKind
) -> None:
    server.faults.add(Fault(kind=kind))
    (failed,) = await source.fetch([query("up")])
    assert isinstance(failed.error, VendorResponseError)
    assert "connection 'prom'" in str(failed.error)


async def test_wrong_shapes(server: SandboxServer, source: PrometheusSource) -> None:
    matrix = '{"status":"success","data":{"resultType":"matrix","result":[]}}'
    server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body=matrix))
    (failed,) = await source.fetch([query("up[5m]")])
    assert isinstance(failed.error, QueryError) and "range vector" in str(failed.error)
    server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body='{"status":"success"}'))
    (failed,) = await source.fetch([query("up")])
    assert isinstance(failed.error, VendorResponseError)


def test_models_and_descriptor() -> None:
    assert connector.type == "prometheus" and connector.query_model is PrometheusQuery
    with pytest.raises(ValidationError):
        PrometheusConnection.model_validate({"url": "prom:9090"})
    with pytest.raises(ValidationError):
        PrometheusQuery.model_validate({"query": "up", "aggregate": "median"})
    with pytest.raises(ValidationError):
        PrometheusQuery.model_validate({"query": "  "})
    config = PrometheusConnection.model_validate(
        {"url": "http://p:9090/", "auth": {"type": "bearer", "token": "t0k"}}
    )
    assert config.url == "http://p:9090" and config.secret_values() == ["t0k"]
    assert isinstance(QueryError("x"), ConnectorError)
