"""A third-party connector's ``budget_observers`` read its vendor's own rate-limit headers.

The vendor (a small app on a real socket) says its quota is spent in headers of its own; the
connection whose observers read them pauses instead of sending again, one without them does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from okrsync.errors import QuotaExhaustedError
from okrsync.sandbox import SandboxServer
from okrsync.sdk.budget import BudgetPolicy, CallBudget, HeaderObserver, header_number
from okrsync.sdk.connector import ConnectionConfig, QuerySpec, Source
from okrsync.sdk.http import HttpClient, OwnsHttpClient
from okrsync.sdk.models import CycleWindow, Query, Reading

CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


async def count(request: Request) -> JSONResponse:
    headers = {"X-Acme-Quota-Left": "0", "X-Acme-Quota-Reset-Hours": "2"}
    return JSONResponse({"count": 3}, headers=headers)


def acme_quota_hold(headers: httpx.Headers) -> float | None:
    """Acme's own headers: quota left, and the hours until it is refilled."""
    if header_number(headers.get("x-acme-quota-left")) != 0:
        return None
    hours = header_number(headers.get("x-acme-quota-reset-hours"))
    return hours * 3600 if hours is not None else None


class AcmeConnection(ConnectionConfig):
    url: str


class AcmeQuery(QuerySpec):
    pass


class PlainSource(OwnsHttpClient, Source[AcmeConnection, AcmeQuery]):
    """Builds its client as a connector does, with whatever observers it declares."""

    query_model = AcmeQuery

    def __init__(self, name: str, config: AcmeConnection) -> None:
        super().__init__(name, config)
        budget = CallBudget(
            BudgetPolicy(max_wait=60),
            shared=self.budgets.bucket("api"),
            extra_observers=self.budget_observers(),
        )
        self._client = HttpClient(connection=name, base_url=config.url, budget=budget)

    async def fetch_one(self, query: Query[AcmeQuery]) -> Reading:
        body = await self._client.get_json("/count", subject=query.subject)
        return Reading(query.key, Decimal(body["count"]), "", datetime.now(UTC))


class AcmeSource(PlainSource):
    def budget_observers(self) -> Sequence[HeaderObserver]:
        return (acme_quota_hold,)


@pytest.fixture
def vendor() -> Iterator[SandboxServer]:
    with SandboxServer(Starlette(routes=[Route("/count", count)]), name="acme") as server:
        yield server


def query() -> Query[AcmeQuery]:
    spec = AcmeQuery()
    return Query(Query.make_key("acme", spec, CYCLE), "acme", ("m",), spec, CYCLE)


async def two_fetches(source: PlainSource) -> list[Reading]:
    try:
        return [*(await source.fetch([query()])), *(await source.fetch([query()]))]
    finally:
        await source.aclose()


async def test_the_connections_own_observers_pause_it(vendor: SandboxServer) -> None:
    readings = await two_fetches(AcmeSource("acme", AcmeConnection(type="acme", url=vendor.url)))
    assert readings[0].value == 3
    assert isinstance(readings[1].error, QuotaExhaustedError)  # two hours > max_wait: a pause
    assert len(vendor.requests) == 1


async def test_without_observers_the_vendors_own_headers_mean_nothing(
    vendor: SandboxServer,
) -> None:
    source = PlainSource("acme", AcmeConnection(type="acme", url=vendor.url))
    assert source.budget_observers() == ()  # the default
    readings = await two_fetches(source)
    assert [r.value for r in readings] == [3, 3]
    assert len(vendor.requests) == 2
