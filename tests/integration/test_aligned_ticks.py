"""The daemon asks each request once per tick: metrics reading one answer fall due together.

In-process, on SQLite and PostgreSQL, against the ``http_json`` fake on a loopback socket. The
daemon's clock is the test's: it is stepped 100 ms at a time through a minute of mixed schedules
(``every 10s``, ``every 20s``, ``every 1m``, cron), letting the daemon finish each step's work
before the next, and every request the fake receives is placed on the step that caused it. So
the test counts requests per tick, not seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from connectors.http_json import connector as http_json
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.sandbox.faults import RequestRecord
from okrsync.settings import Settings

T0 = datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC)  # mid-tick: the first run is not on a tick
STEP = timedelta(milliseconds=100)
TICK = timedelta(seconds=10)

# metric -> (request, json_path, schedule); three requests, each read at several paths
METRICS = {
    "d0": ("deals", "$.data[0].amount", "every 10s"),
    "d1": ("deals", "$.data[1].amount", "every 10s"),
    "d2": ("deals", "$.data[2].amount", "every 20s"),
    "d3": ("deals", "$.data[3].amount", "every 1m"),
    "d4": ("deals", "$.data[4].amount", "* * * * *"),
    "won_total": ("won", "$.total", "every 10s"),
    "won_count": ("won", "$.count", "every 10s"),
    "lost_total": ("lost", "$.total", "every 20s"),
    "lost_count": ("lost", "$.count", "every 1m"),
}
REQUESTS = {
    "deals": "{request_path: /v1/deals, params: {limit: 100}}",
    "won": "{request_path: /v1/deals/summary, params: {status: won}}",
    "lost": "{request_path: /v1/deals/summary, params: {status: lost}}",
}
QUERY_OF = {"/v1/deals": "deals", "status=won": "won", "status=lost": "lost"}


def config(url: str, token: str) -> str:
    metrics = "\n".join(
        f"  {name}: {{connection: api, json_path: '{path}', schedule: '{schedule}', "
        + REQUESTS[request][1:-1]
        + "}"
        for name, (request, path, schedule) in METRICS.items()
    )
    krs = "\n".join(
        f"      - {{id: {n}, title: {n}, metric: {n}, kind: increase, start: 0, target: 1000000}}"
        for n in METRICS
    )
    return (
        "version: 1\n"
        f"connections:\n  api: {{type: http_json, url: '{url}', "
        f"auth: {{type: bearer, token: '{token}'}}}}\n"
        "cycles:\n  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n"
        f"metrics:\n{metrics}\n"
        f"objectives:\n  - id: o\n    title: O\n    cycle: q4\n    key_results:\n{krs}\n"
    )


def request_of(path: str, query: str) -> str:
    return QUERY_OF[query.split("&")[0]] if path.endswith("summary") else QUERY_OF[path]


def bound(tick: int) -> set[str]:
    """The requests some metric's schedule has a tick for in the ``tick``-th 10 s window."""
    start = T0 - timedelta(seconds=5) + tick * TICK  # windows start on the 10 s grid
    wanted: set[str] = set()
    for request, _path, schedule in METRICS.values():
        period = {"every 10s": 10, "every 20s": 20}.get(schedule, 60)
        if int(start.timestamp()) % period == 0:
            wanted.add(request)
    return wanted


@pytest.fixture
def api() -> Iterator[SandboxServer]:
    assert http_json.fake is not None
    with SandboxServer(http_json.fake(), name="api") as server:
        yield server


async def drive(
    database_url: str, api: SandboxServer, text: str, span: timedelta
) -> list[tuple[datetime, list[RequestRecord]]]:
    """Run the daemon on ``text`` from ``T0`` for ``span`` in steps of ``STEP``; the requests
    the fake received at each step."""
    now = T0
    registry = load_registry()
    app = App.open(
        Settings(database_url=SecretStr(database_url)),
        config=load_config_text(text, registry.connectors),
        registry=registry,
        clock=lambda: now,
    )
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    per_step: list[tuple[datetime, list[RequestRecord]]] = []

    async def settle() -> None:
        """Until the daemon looked at ``now`` and everything it started has ended."""
        for _ in range(600):
            if daemon.last_loop_at == now and not daemon.fetching and not daemon._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the daemon did not settle at {now}")

    try:
        seen = 0
        await settle()
        while now < T0 + span:
            log = api.requests
            per_step.append((now, log[seen:]))
            seen = len(log)
            now += STEP
            daemon._wake.set()
            await settle()
    finally:
        stop.set()
        await stop_within(task, 10)
        await app.aclose()
    return per_step


def per_window(per_step: list[tuple[datetime, list[RequestRecord]]]) -> dict[int, list[str]]:
    """The requests of each 10 s window (window 0 holds the first run, at ``T0``)."""
    windows: dict[int, list[str]] = {}
    for moment, asked in per_step:
        window = (moment - T0 + timedelta(seconds=5)) // TICK
        windows.setdefault(window, []).extend(request_of(r.path, r.query) for r in asked)
    return windows


async def test_each_request_is_asked_once_per_tick(database_url: str, api: SandboxServer) -> None:
    text = config(api.url, str(http_json.sandbox()["token"]))
    windows = per_window(await drive(database_url, api, text, 6 * TICK - STEP))
    assert sorted(windows[0]) == ["deals", "lost", "won"]  # the first run: everything, once
    assert max(windows) == 6
    for tick in range(1, 7):
        asked = windows.get(tick, [])
        assert sorted(asked) == sorted(bound(tick)), (tick, asked)  # each due request, once
    total = sum(len(asked) for asked in windows.values())
    assert total == 3 + sum(len(bound(tick)) for tick in range(1, 7))


async def test_forty_metrics_reading_one_answer_cost_one_request_per_tick(
    database_url: str, api: SandboxServer
) -> None:
    """The case seen in the issue: 40 metrics reading one answer, every 10s (was 120 requests
    in 35 s of ``okrsync run``; the bound is one per tick)."""
    token = str(http_json.sandbox()["token"])
    metrics = "\n".join(
        f"  s{i}: {{connection: api, request_path: /v1/deals, params: {{limit: 100}}, "
        f"json_path: '$.data[{i}].amount', schedule: every 10s}}"
        for i in range(40)
    )
    krs = "\n".join(
        f"      - {{id: s{i}, title: s{i}, metric: s{i}, kind: increase, start: 0, target: 9}}"
        for i in range(40)
    )
    text = (
        "version: 1\n"
        f"connections:\n  api: {{type: http_json, url: '{api.url}', "
        f"auth: {{type: bearer, token: '{token}'}}}}\n"
        "cycles:\n  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n"
        f"metrics:\n{metrics}\n"
        f"objectives:\n  - id: o\n    title: O\n    cycle: q4\n    key_results:\n{krs}\n"
    )
    windows = per_window(await drive(database_url, api, text, 4 * TICK - STEP))
    assert {tick: len(asked) for tick, asked in windows.items()} == dict.fromkeys(range(5), 1)
