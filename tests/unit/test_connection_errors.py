"""Errors of a whole connection name each query they fail, and a hung fetch ends at its deadline.

``fetch_connection`` turns one failure of a connection into one error reading per query; each
reading must name its own metric (``for_subject`` used to rename the one shared exception in
place, so every key result named the first metric). A fetch that outlives its deadline becomes
error readings too, naming the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Any

from okrsync.engine.sync import fetch_connection
from okrsync.errors import (
    ConnectorError,
    FetchDeadlineError,
    RateLimitedError,
    RetriableError,
)
from okrsync.redaction import Redactor
from okrsync.sdk.connector import ConnectionConfig, QuerySpec, Source
from okrsync.sdk.models import CycleWindow, Query, Reading

CYCLE = CycleWindow("q4", date(2026, 10, 1), date(2026, 12, 31))


class Spec(QuerySpec):
    name: str


class Broken(Source[ConnectionConfig, Spec]):
    """Fails every fetch with one exception, or hangs until released."""

    query_model = Spec

    def __init__(self, error: ConnectorError | None = None) -> None:
        super().__init__("vendor", ConnectionConfig(type="broken"))
        self.error = error
        self.release = asyncio.Event()
        self.cancelled = False

    async def fetch(self, queries: Sequence[Query[Spec]]) -> list[Reading]:
        if self.error is not None:
            raise self.error
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return []

    async def fetch_one(self, query: Query[Spec]) -> Reading:  # pragma: no cover - unused
        raise NotImplementedError


class OneSource:
    """The part of :class:`~okrsync.engine.runtime.Connections` a fetch uses."""

    def __init__(self, source: Source[Any, Any]) -> None:
        self._source = source

    def source(self, name: str) -> Source[Any, Any]:
        return self._source


def queries(*metrics: str) -> list[Query[Any]]:
    return [
        Query(f"key-{m}", "vendor", (m,), Spec(name=m), CYCLE)  # type: ignore[arg-type]
        for m in metrics
    ]


def test_for_subject_names_a_copy_and_leaves_the_original_alone() -> None:
    shared = RateLimitedError("slow down", retry_after=7.0, status_code=429)
    first = shared.for_subject("crm", "metric 'won'")
    second = shared.for_subject("crm", "metric 'lost'")
    assert str(first) == "connection 'crm', metric 'won': slow down"
    assert str(second) == "connection 'crm', metric 'lost': slow down"
    assert str(shared) == "slow down" and shared.subject is None
    assert isinstance(second, RateLimitedError)
    assert (second.retry_after, second.status_code, second.blame) == (7.0, 429, shared.blame)
    # names an error already had are kept
    named = ConnectorError("bad", connection="a", subject="metric 'x'").for_subject("b", "y")
    assert str(named) == "connection 'a', metric 'x': bad"


def test_one_failure_of_a_whole_connection_names_each_query_it_failed() -> None:
    source = Broken(RetriableError("503 from the vendor"))
    asked = queries("won", "lost", "open")
    readings, _calls = asyncio.run(fetch_connection(OneSource(source), "vendor", asked, Redactor()))  # type: ignore[arg-type]
    errors = {r.key: str(r.error) for r in readings}
    assert errors == {
        "key-won": "connection 'vendor', metric 'won': 503 from the vendor",
        "key-lost": "connection 'vendor', metric 'lost': 503 from the vendor",
        "key-open": "connection 'vendor', metric 'open': 503 from the vendor",
    }


def test_a_fetch_past_its_deadline_is_abandoned_with_an_error_per_query() -> None:
    source = Broken()
    asked = queries("won", "lost")

    async def fetch() -> list[Reading]:
        readings, _calls = await fetch_connection(
            OneSource(source),  # type: ignore[arg-type]
            "vendor",
            asked,
            Redactor(),
            deadline=0.05,
        )
        return readings

    readings = asyncio.run(fetch())
    assert source.cancelled  # the hung fetch was stopped, not left running
    assert all(isinstance(r.error, FetchDeadlineError) for r in readings)
    assert sorted(str(r.error) for r in readings) == [
        "connection 'vendor', metric 'lost': no answer within 0.05s "
        "(the connection's fetch_deadline)",
        "connection 'vendor', metric 'won': no answer within 0.05s "
        "(the connection's fetch_deadline)",
    ]


def test_a_timeout_raised_by_the_connector_itself_is_not_taken_for_the_deadline() -> None:
    class TimesOut(Broken):
        async def fetch(self, queries: Sequence[Query[Spec]]) -> list[Reading]:
            raise TimeoutError("driver timeout")

    readings, _calls = asyncio.run(
        fetch_connection(OneSource(TimesOut()), "vendor", queries("won"), Redactor(), deadline=60)  # type: ignore[arg-type]
    )
    (reading,) = readings
    assert not isinstance(reading.error, FetchDeadlineError)
    assert "connector failed: TimeoutError: driver timeout" in str(reading.error)
