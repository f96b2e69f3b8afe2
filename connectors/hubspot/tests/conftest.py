"""Shared fixtures: the fake portal on a loopback socket, and a source with quick retries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest

from connectors.hubspot import HubSpotConnection, HubSpotQuery, HubSpotSource
from connectors.hubspot import source as hubspot_source
from connectors.hubspot.fake import Portal, hubspot_app
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query

TOKEN = "pat-na1-5b7e0c1d-4f2a-test"
ANCHOR = date(2026, 12, 31)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


@pytest.fixture(autouse=True)
def _noon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spent daily limit holds until UTC midnight; tests run at any hour, and a minute
    before midnight the hold is too short to pause anything. Every test sees noon."""
    real = hubspot_source.seconds_to_utc_midnight

    def at_noon(now: datetime) -> float:
        return real(now.replace(hour=12, minute=0, second=0, microsecond=0))

    monkeypatch.setattr(hubspot_source, "seconds_to_utc_midnight", at_noon)


class FastSource(HubSpotSource):
    """The real source with waits that keep the suite quick."""

    initial_backoff = 0.01
    max_backoff = 0.02
    secondly_wait = 0.05
    rolling_wait = 0.05


@dataclass
class Fake:
    server: SandboxServer
    portal: Portal

    @property
    def url(self) -> str:
        return self.server.url

    def fault(self, kind: FaultKind, **fields: Any) -> None:
        self.server.faults.add(Fault(kind=kind, **fields))

    def searches(self) -> list[dict[str, Any]]:
        return [r.json_body() for r in self.server.requests if r.path.endswith("/search")]


def start_fake(**options: Any) -> Iterator[Fake]:
    options.setdefault("search_per_second", 1000)
    app = hubspot_app(token=TOKEN, anchor=ANCHOR, **options)
    with SandboxServer(app, name="hubspot") as server:
        yield Fake(server, app.state.portal)


@pytest.fixture
def fake() -> Iterator[Fake]:
    yield from start_fake()


def make_config(fake: Fake, token: str = TOKEN, **connection: Any) -> HubSpotConnection:
    return HubSpotConnection.model_validate(
        {
            "type": "hubspot",
            "access_token": token,
            "base_url": fake.url,
            "max_retries": 2,
            "search_requests_per_second": 1000,
            **connection,
        }
    )


def make_source(fake: Fake, token: str = TOKEN, **connection: Any) -> HubSpotSource:
    return FastSource("crm", make_config(fake, token, **connection))


def query(metric: str = "pipeline", **spec: Any) -> Query[HubSpotQuery]:
    model = HubSpotQuery.model_validate(spec)
    return Query(Query.make_key("crm", model, CYCLE), "crm", (metric,), model, CYCLE)
