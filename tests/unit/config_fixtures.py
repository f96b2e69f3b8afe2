"""A tiny connector registry for config tests, independent of the real connectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import SecretStr

from okrsync.sdk.connector import (
    ConnectionConfig,
    Connector,
    ConnectorBase,
    MirrorSpec,
    QuerySpec,
    Sink,
    Source,
)
from okrsync.sdk.models import CycleWindow, KeyResultUpdate, PushResult, Query, Reading
from okrsync.sdk.work import WorkItem, WorkQuery, WorkTracker


class FakeSqlConnection(ConnectionConfig):
    url: SecretStr
    timeout: int = 30


class FakeSqlQuery(QuerySpec):
    query: str


class FakeSqlSource(Source[FakeSqlConnection, FakeSqlQuery]):
    query_model = FakeSqlQuery

    async def fetch_one(self, query: Query[FakeSqlQuery]) -> Reading:
        raise NotImplementedError


class FakeHookConnection(ConnectionConfig):
    url: str
    secret: SecretStr | None = None


class FakeHookMirror(MirrorSpec):
    channel: str | None = None


class FakeHookSink(Sink[FakeHookConnection, FakeHookMirror]):
    mirror_model = FakeHookMirror

    async def push(
        self, update: KeyResultUpdate, mirror: FakeHookMirror, previous_ref: str | None
    ) -> PushResult:
        raise NotImplementedError


class FakeTrackerConnection(ConnectionConfig):
    url: str


class FakeTrackerQuery(WorkQuery):
    jql: str


class FakeTracker(ConnectorBase[FakeTrackerConnection], WorkTracker):
    work_model = FakeTrackerQuery

    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        raise NotImplementedError

    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        raise NotImplementedError


CONNECTORS: dict[str, Connector] = {
    "fake_sql": Connector(
        type="fake_sql",
        summary="A SQL database (test double).",
        connection_model=FakeSqlConnection,
        implementation=FakeSqlSource,
    ),
    "fake_hook": Connector(
        type="fake_hook",
        summary="A webhook (test double).",
        connection_model=FakeHookConnection,
        implementation=FakeHookSink,
    ),
    "fake_tracker": Connector(
        type="fake_tracker",
        summary="A work tracker (test double).",
        connection_model=FakeTrackerConnection,
        implementation=FakeTracker,
    ),
}

VALID_CONFIG = """\
version: 1
defaults:
  schedule: every 1h
  stale_after: 1d
connections:
  warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}
  hook: {type: fake_hook, url: "http://127.0.0.1:9000/okr", secret: "${HOOK_SECRET:-}"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won:
    connection: warehouse
    schedule: every 15m
    query: "SELECT SUM(amount) FROM deals WHERE won = 1 AND closed_on >= :cycle_start"
  lost:
    connection: warehouse
    query: "SELECT SUM(amount) FROM deals WHERE won = 0"
objectives:
  - id: revenue
    title: Grow new-business revenue
    cycle: 2026-Q4
    owner: sales
    parent: null
    weight: 1
    description: Everything that brings money in.
    key_results:
      - id: bookings
        title: Close $1000 in new bookings
        metric: won
        kind: increase
        start: 0
        target: 1000.5
        unit: USD
        weight: 1
        stale_after: 2h
        mirrors:
          - {connection: hook}
          - {connection: hook, channel: sales}
      - id: win-rate
        title: Keep the win rate between 20 and 40 percent
        value: "won / (won + lost) * 100"
        kind: stay_between
        low: 0.1
        high: 40
  - id: retention
    title: Keep customers
    cycle: "2026-Q4"
    parent: revenue
    weight: 2.5
"""

VALID_ENV = {"WAREHOUSE_URL": "postgresql://reader:s3cr3t-pw@db.internal/sales"}
