"""Shared fixtures: the sandbox GitHub on a loopback socket, and a connector with short waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.github import GitHubConnection, GitHubConnector, GitHubQuery
from connectors.github.client import Timing
from connectors.github.fake import GitHubData, GitHubFake, github_app
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, KeyResultUpdate, Query, Status

TOKEN = "ghp_testTokenAbc123def456ghi789"  # the fake's token in these tests
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
API = "okrsync-demo/api"
WEB = "okrsync-demo/web"


class FastConnector(GitHubConnector):
    """The real connector with waits that keep the suite quick."""

    timing = Timing(
        initial_backoff=0.01,
        max_backoff=0.02,
        rate_limit_backoff=0.01,
        secondary_wait=0.3,
        reset_margin=0.2,
        max_wait=5.0,
    )


@dataclass
class Fake:
    server: SandboxServer
    data: GitHubData
    fake: GitHubFake

    @property
    def url(self) -> str:
        return self.server.url

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))


def new_fake(**options: Any) -> Fake:
    """A fake (not yet started: use ``with fake.server:``), with app options such as limits."""
    app = github_app(token=TOKEN, anchor=ANCHOR, **options)
    return Fake(SandboxServer(app, name="github"), app.state.data, app.state.fake)


@pytest.fixture
def fake() -> Iterator[Fake]:
    started = new_fake()
    with started.server:
        yield started


def make_connector(url: str, token: str = TOKEN, **connection: Any) -> GitHubConnector:
    config = GitHubConnection.model_validate(
        {"type": "github", "token": token, "base_url": url, "max_retries": 2, **connection}
    )
    return FastConnector("gh", config)


@pytest.fixture
async def github(fake: Fake) -> AsyncIterator[GitHubConnector]:
    connector = make_connector(fake.url)
    yield connector
    await connector.aclose()


def query(metric: str = "bugs_closed", **spec: Any) -> Query[GitHubQuery]:
    model = GitHubQuery.model_validate(spec)
    return Query(Query.make_key("gh", model, CYCLE), "gh", (metric,), model, CYCLE)


def update(
    value: str | None = "42",
    *,
    key_result_id: str = "bugs-closed",
    status: Status = Status.ON_TRACK,
    progress: str | None = "0.42",
) -> KeyResultUpdate:
    return KeyResultUpdate(
        objective_id="quality",
        objective_title="Ship a calmer product",
        key_result_id=key_result_id,
        key_result_title="Close 100 bugs",
        cycle_id="2026-Q4",
        kind="increase",
        value=Decimal(value) if value is not None else None,
        start=Decimal(0),
        target=Decimal(100),
        unit="bugs",
        progress=Decimal(progress) if progress is not None else None,
        progress_display=min(Decimal(progress), Decimal(1)) if progress is not None else None,
        status=status,
        observed_at=datetime(2026, 11, 12, 9, 30, tzinfo=UTC),
        idempotency_key=f"{key_result_id}:{value}",
    )
