"""A cycle closing under a running daemon: frozen values, one final push per mirror, no fetches.

In-process, on SQLite and PostgreSQL. The source is the ``http_json`` fake and the mirrors a
webhook receiver, each on a loopback socket; the daemon's clock is the test's and is stepped a
minute at a time across the end of the grace period of 2026-Q4 (``close_after: 1d``), with a
deal closing while the cycle is ``closing`` (its value still updates) and another after it
closed (its frozen record does not move). Every request the fake receives is counted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from starlette.applications import Starlette
from structlog.testing import capture_logs

from connectors.http_json import connector as http_json
from connectors.webhook.receiver import ReceiverState, receiver_app
from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.cycle_pages import cycle_routes
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.closeout import CloseReport, CycleCloser
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import (
    CycleCloseoutRow,
    CycleRow,
    DeliveryRow,
    KeyResultRow,
    ObjectiveRow,
)

CLOSES = datetime(2027, 1, 2, tzinfo=UTC)  # 2026-Q4's end (12-31) + 1 day of grace
T0 = CLOSES - timedelta(minutes=3, seconds=30)
STEP = timedelta(minutes=1)


def config(api: str, token: str, hook: str) -> str:
    return f"""\
version: 1
connections:
  api: {{type: http_json, url: '{api}', auth: {{type: bearer, token: '{token}'}}}}
  hook: {{type: webhook, url: '{hook}'}}
cycles:
  - {{id: 2026-Q4, start: 2026-10-01, end: 2026-12-31, close_after: 1d}}
  - {{id: 2027-Q1, start: 2027-01-01, end: 2027-03-31}}
metrics:
  won: {{connection: api, request_path: /v1/deals/summary, params: {{status: won}},
         json_path: $.count, schedule: every 1m}}
  lost: {{connection: api, request_path: /v1/deals/summary, params: {{status: lost}},
          json_path: $.count, schedule: every 1m}}
objectives:
  - id: old
    title: Last quarter
    cycle: 2026-Q4
    key_results:
      - id: won
        title: Win deals
        metric: won
        kind: increase
        start: 0
        target: 1000
        mirrors: [{{connection: hook, path: /a}}, {{connection: hook, path: /b}}]
  - id: new
    title: This quarter
    cycle: 2027-Q1
    key_results:
      - {{id: lost, title: Lose few, metric: lost, kind: decrease, start: 1000, target: 0,
          mirrors: [{{connection: hook, path: /c}}]}}
"""


Servers = tuple[SandboxServer, Any, SandboxServer, ReceiverState]


@pytest.fixture
def servers() -> Iterator[Servers]:
    """The source's fake (and its data, to close deals) and the webhook receiver."""
    assert http_json.fake is not None
    api_app, hook_app = http_json.fake(), receiver_app()
    with (
        SandboxServer(api_app, name="api") as api,
        SandboxServer(hook_app, name="hook") as hook,
    ):
        yield api, api_app.state.data, hook, hook_app.state.receiver


def won_requests(api: SandboxServer) -> int:
    return sum(1 for r in api.requests if "status=won" in r.query)


def lost_requests(api: SandboxServer) -> int:
    return sum(1 for r in api.requests if "status=lost" in r.query)


async def test_a_cycle_closes_once_under_a_running_daemon(
    database_url: str, servers: Servers
) -> None:
    api, data, hook, receiver = servers
    now = T0
    registry = load_registry()
    text = config(api.url, str(http_json.sandbox()["token"]), hook.url)

    def open_app() -> App:
        return App.open(
            Settings(database_url=SecretStr(database_url), public_read=True),
            config=load_config_text(text, registry.connectors, today=now.date()),
            registry=registry,
            clock=lambda: now,
        )

    app = open_app()
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))

    async def settle() -> None:
        for _ in range(1000):
            if daemon.last_pass_at == now and not daemon.fetching and not daemon._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the daemon did not settle at {now}")

    async def step() -> None:
        nonlocal now
        now += STEP
        daemon._wake.set()
        await settle()

    try:
        await settle()
        assert daemon.closed_cycles == set()
        won_at_start = won_requests(api)
        assert won_at_start == 1
        data.add_deal(10, status="won")  # closing: the value still updates
        await step()
        await step()
        await step()  # T0 + 3m: still closing
        assert won_requests(api) == 4
        with session_scope(app.engine) as session:
            closing_value = session.get(KeyResultRow, "won")
        assert closing_value is not None and closing_value.value is not None
        await step()  # past CLOSES: the pass closes 2026-Q4 before it looks for due metrics
        assert daemon.closed_cycles == {"2026-Q4"}
        asked_before = won_requests(api)
        lost_before = lost_requests(api)
        data.add_deal(10, status="won")
        for _ in range(3):
            await step()
        assert won_requests(api) == asked_before == 4  # no vendor request for a closed cycle
        assert lost_requests(api) == lost_before + 3  # the open cycle goes on
        for _ in range(200):  # the dispatcher delivers the final pushes
            finals = [d for d in receiver.received if d.body.get("final")]
            if len(finals) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await stop_within(task, 10)
        await app.aclose()

    finals = [d for d in receiver.received if d.body.get("final")]
    assert sorted(d.path for d in finals) == ["/a", "/b"]  # one per mirror of the closed KR
    assert {d.body["value"] for d in finals} == {str(closing_value.value)}
    assert all(d.body["score"] is not None and d.body["cycle"] == "2026-Q4" for d in finals)
    assert not any(d.path == "/c" and d.body.get("final") for d in receiver.received)

    # restart (a replica, or the next start): the close-out is not written or pushed twice
    app = open_app()
    try:
        pages = await asyncio.to_thread(dashboard_pages, app)
        listed = await asyncio.to_thread(api_cycles, app)
        reports, closed, _next = CycleCloser(app.engine, app.config, clock=app.clock).close_due()
        assert reports == [] and closed == {"2026-Q4"}
        again = CycleCloser(app.engine, app.config, clock=app.clock).close("2026-Q4", by="command")
        assert not again.closed_now
        with session_scope(app.engine) as session:
            rows = session.exec(select(CycleCloseoutRow).order_by(CycleCloseoutRow.id)).all()
            cycle = session.get(CycleRow, "2026-Q4")
            won = session.get(KeyResultRow, "won")
    finally:
        await app.aclose()
    assert [(r.subject, r.subject_id) for r in rows] == [
        ("key_result", "won"),
        ("objective", "old"),
    ]
    frozen = rows[0]
    assert frozen.value == closing_value.value  # the deal after the close did not count
    assert won is not None and won.value == closing_value.value
    assert frozen.score is not None and rows[1].score == frozen.score
    assert cycle is not None and cycle.closed_at == CLOSES + timedelta(seconds=30)
    assert cycle.closed_by == "calendar"
    assert listed == {
        "2026-Q4": ("closed", (CLOSES + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")),
        "2027-Q1": ("active", None),
    }
    listing, report, missing = pages
    assert 'id="cycle-2026-Q4"' in listing and ">closed</td><td>final</td>" in listing
    assert f"<td>Last quarter {rows[1].score:.2f}</td>" in listing  # the frozen score
    assert "Cycle 2026-Q4" in report and "final scores" in report and "<svg" in report
    assert missing == 404


def dashboard_pages(app: App) -> tuple[str, str, int]:
    """The dashboard's list of cycles and the closed cycle's page, over a socket."""
    site = Starlette(routes=cycle_routes(ApiContext.from_app(app)))
    with SandboxServer(site, name="dashboard") as server, httpx.Client(base_url=server.url) as web:
        listing, report = web.get("/cycles"), web.get("/cycles/2026-Q4")
        assert listing.status_code == report.status_code == 200
        return listing.text, report.text, web.get("/cycles/nope").status_code


def api_cycles(app: App) -> dict[str, tuple[str, str | None]]:
    """``GET /api/v1/cycles`` over a socket: each cycle's state and ``closed_at``."""
    with (
        SandboxServer(build_app(ApiContext.from_app(app)), name="api") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answer = http.get("/api/v1/cycles")
        assert answer.status_code == 200, answer.text
        return {c["id"]: (c["state"], c["closed_at"]) for c in answer.json()["cycles"]}


async def test_two_replicas_closing_at_once_write_one_record(
    database_url: str, servers: Servers
) -> None:
    """Two replicas (two engines on one PostgreSQL store) close the same cycle at the same
    moment: one writes the record and queues the finals, the other finds it closed."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is single-node: one daemon per store file")
    api, _data, hook, _receiver = servers
    registry = load_registry()
    text = config(api.url, str(http_json.sandbox()["token"]), hook.url)
    apps = [
        App.open(
            Settings(database_url=SecretStr(database_url), instance_id=f"replica-{n}"),
            config=load_config_text(text, registry.connectors, today=CLOSES.date()),
            registry=registry,
            clock=lambda: CLOSES,
        )
        for n in range(2)
    ]
    try:
        apps[0].apply_definitions()
        barrier = threading.Barrier(2)

        def close(app: App) -> CloseReport:
            barrier.wait()
            return CycleCloser(app.engine, app.config, clock=app.clock).close("2026-Q4", by="x")

        reports = await asyncio.gather(*(asyncio.to_thread(close, a) for a in apps))
        with session_scope(apps[0].engine) as session:
            records = session.exec(select(CycleCloseoutRow)).all()
            finals = session.exec(select(DeliveryRow)).all()
    finally:
        for app in apps:
            await app.aclose()
    assert sorted(r.closed_now for r in reports) == [False, True]
    assert len(records) == 2  # the key result and its objective, once
    assert len([d for d in finals if d.payload.get("final")]) == 2  # one per mirror


async def test_a_running_daemon_rolls_current_objectives_into_the_next_cycle(
    database_url: str, servers: Servers
) -> None:
    """``new`` says ``cycle: current``; ``old`` stays pinned to 2026-Q4. Past the close, the
    same daemon (no restart) moves ``new`` to 2027-Q1 and keeps fetching its metric, while
    2026-Q4's record (with ``new`` as it was) stays frozen and ``won`` is not fetched."""
    api, data, hook, _receiver = servers
    registry = load_registry()
    text = config(api.url, str(http_json.sandbox()["token"]), hook.url).replace(
        "  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31, close_after: 1d}\n"
        "  - {id: 2027-Q1, start: 2027-01-01, end: 2027-03-31}\n",
        '  - {every: quarter, from: 2026-10-01, id: "{year}-Q{quarter}", close_after: 1d}\n',
    )
    text = text.replace("cycle: 2027-Q1", "cycle: current")
    now = T0
    loaded = load_config_text(text, registry.connectors, today=now.date())
    assert loaded.objective("new").cycle == "2026-Q4"  # still closing: it stays
    app = App.open(
        Settings(database_url=SecretStr(database_url)),
        config=loaded,
        registry=registry,
        clock=lambda: now,
    )
    app.apply_definitions()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    told: list[str] = []
    daemon.on_config.append(lambda rolled: told.append(rolled.objective("new").cycle))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))

    async def step() -> None:
        nonlocal now
        now += STEP
        daemon._wake.set()
        for _ in range(1000):
            if daemon.last_pass_at == now and not daemon.fetching and not daemon._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the daemon did not settle at {now}")

    def frozen() -> list[tuple[str, str, Decimal | None]]:
        with session_scope(app.engine) as session:
            rows = session.exec(select(CycleCloseoutRow).order_by(CycleCloseoutRow.id)).all()
            return [(r.subject_id, r.objective_id, r.value) for r in rows]

    try:
        with capture_logs() as logs:
            for _ in range(4):  # across CLOSES: the pass closes 2026-Q4, then rolls over
                await step()
        assert daemon.closed_cycles == {"2026-Q4"}
        assert daemon.config.objective("new").cycle == "2027-Q1" and told == ["2027-Q1"]
        assert daemon.config.objective("old").cycle == "2026-Q4"
        (rolled,) = [e for e in logs if e["event"] == "cycle_rolled_over"]
        assert (rolled["left"], rolled["to"]) == (["2026-Q4"], ["2027-Q1"])
        record = frozen()
        assert {(subject, objective) for subject, objective, _v in record} == {
            ("won", "old"),
            ("old", "old"),
            ("lost", "new"),
            ("new", "new"),
        }
        won_before, lost_before = won_requests(api), lost_requests(api)
        data.add_deal(10, status="lost")
        for _ in range(3):
            await step()
        assert won_requests(api) == won_before  # the closed cycle's metric is not fetched
        assert lost_requests(api) == lost_before + 3  # the rolled objective's still is
        assert frozen() == record  # the closed cycle's record does not move
        with session_scope(app.engine) as session:
            new = session.get(ObjectiveRow, "new")
            cycle = session.get(CycleRow, "2027-Q2")  # the next one is listed, as on a reload
            lost = session.get(KeyResultRow, "lost")
        assert new is not None and new.cycle_id == "2027-Q1"
        assert cycle is not None and cycle.closed_at is None
        lost_frozen = next(v for s, _o, v in record if s == "lost")
        assert lost is not None and lost.value != lost_frozen  # it went on updating
    finally:
        stop.set()
        await stop_within(task, 10)
        await app.aclose()


async def test_a_cycle_waits_to_close_while_its_connection_is_being_fetched(
    database_url: str, servers: Servers
) -> None:
    """A value still being fetched for the cycle is recorded before the close, so no change is
    queued for a mirror after its final push."""
    api, _data, hook, _receiver = servers
    registry = load_registry()
    text = config(api.url, str(http_json.sandbox()["token"]), hook.url)
    app = App.open(
        Settings(database_url=SecretStr(database_url)),
        config=load_config_text(text, registry.connectors, today=CLOSES.date()),
        registry=registry,
        clock=lambda: CLOSES,
    )
    try:
        app.apply_definitions()
        closer = CycleCloser(app.engine, app.config, clock=app.clock)
        assert closer.close_due(busy={"hook"})[0][0].cycle_id == "2026-Q4"  # not a source of it
        assert closer.close("2026-Q4", by="x").closed_now is False
        waited = CycleCloser(app.engine, app.config, clock=lambda: CLOSES + timedelta(days=100))
        reports, closed, _next = waited.close_due(busy={"api"})  # 2027-Q1 reads api too
        assert reports == [] and closed == {"2026-Q4"}
        reports, closed, _next = waited.close_due()
        assert [r.cycle_id for r in reports] == ["2027-Q1"]
    finally:
        await app.aclose()
