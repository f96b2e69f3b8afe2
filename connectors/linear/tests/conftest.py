"""Shared fixtures: the sandbox Linear on a loopback socket, and a connector with short waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.linear import LinearConnection, LinearConnector, LinearQuery
from connectors.linear.fake import API_KEY, SCHEMA_PATH, LinearData, linear_app
from connectors.linear.graphql_client import Timing
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, KeyResultUpdate, Query, Reading, Status

SCHEMA = SCHEMA_PATH  # the schema the fake executes on, shipped in the package
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


class FastConnector(LinearConnector):
    """The real connector with waits that keep the suite quick."""

    timing = Timing(
        initial_backoff=0.01,
        max_backoff=0.02,
        rate_limit_backoff=0.01,
        reset_margin=0.05,
        max_wait=5.0,
    )


@dataclass
class Fake:
    server: SandboxServer
    data: LinearData

    @property
    def url(self) -> str:
        return self.server.url

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))

    def bodies(self) -> list[Any]:
        return [record.json_body() for record in self.server.requests]


def new_fake(**options: Any) -> Fake:
    app = linear_app(**options)
    return Fake(SandboxServer(app, name="linear"), app.state.data)


@pytest.fixture
def fake() -> Iterator[Fake]:
    started = new_fake()
    with started.server:
        yield started


def make_connector(url: str, **connection: Any) -> LinearConnector:
    fields: dict[str, Any] = {"type": "linear", "base_url": url, "max_retries": 2}
    if "access_token" not in connection:
        fields["api_key"] = API_KEY
    config = LinearConnection.model_validate({**fields, **connection})
    return FastConnector("lin", config)


@pytest.fixture
async def linear(fake: Fake) -> AsyncIterator[LinearConnector]:
    connector = make_connector(fake.url)
    yield connector
    await connector.aclose()


def query(metric: str = "eng_done", **spec: Any) -> Query[LinearQuery]:
    model = LinearQuery.model_validate(spec)
    return Query(Query.make_key("lin", model, CYCLE), "lin", (metric,), model, CYCLE)


async def read(connector: LinearConnector, metric: str = "eng_done", **spec: Any) -> Reading:
    [reading] = await connector.fetch([query(metric, **spec)])
    return reading


def update(
    value: str | None = "42",
    *,
    key_result_id: str = "eng-throughput",
    status: Status = Status.ON_TRACK,
    progress: str | None = "0.42",
) -> KeyResultUpdate:
    return KeyResultUpdate(
        objective_id="delivery",
        objective_title="Ship predictably",
        key_result_id=key_result_id,
        key_result_title="Complete 100 issues",
        cycle_id="2026-Q4",
        kind="increase",
        value=Decimal(value) if value is not None else None,
        start=Decimal(0),
        target=Decimal(100),
        unit="issues",
        progress=Decimal(progress) if progress is not None else None,
        progress_display=min(Decimal(progress), Decimal(1)) if progress is not None else None,
        status=status,
        observed_at=datetime(2026, 11, 12, 9, 30, tzinfo=UTC),
        idempotency_key=f"{key_result_id}:{value}",
    )
