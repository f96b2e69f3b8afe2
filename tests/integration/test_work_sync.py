"""The work behind key results: full and incremental reads, items leaving the query, backlinks,
a failing tracker, and a tracker webhook refreshing within seconds; on SQLite and PostgreSQL.

The tracker is a small plugin of the tests' own (:mod:`tests.integration.work_tracker_fake`)
served on a real socket; requests are counted at the fake, and the clock the engine reads is the
test's, so schedules are crossed without waiting.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.server import HttpServer, bind
from okrsync.app import App
from okrsync.config import Config, load_config_text
from okrsync.engine.closeout import CycleCloser
from okrsync.engine.runtime import Connections
from okrsync.engine.work_sync import WorkSync
from okrsync.plugins import Registry
from okrsync.redaction import Redactor
from okrsync.sandbox.server import SandboxServer
from okrsync.sdk.connector import Connector
from okrsync.sdk.webhooks import sign
from okrsync.settings import Settings
from okrsync.store import work_items
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.definitions import sync_definitions
from okrsync.store.tables import ConnectionStateRow, KeyResultRow, WorkItemRow
from tests.integration.work_tracker_fake import TRACKER, TrackerData, tracker_app
from tests.unit.config_fixtures import CONNECTORS

CONNECTORS_WITH_TRACKER: dict[str, Connector] = {**CONNECTORS, "test_tracker": TRACKER}
HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def config_text(
    url: str, *, other_url: str | None = None, backlink: bool = False, pages: str = ""
) -> str:
    other = (
        f"  other: {{type: test_tracker, url: '{other_url}'}}\n" if other_url is not None else ""
    )
    other_work = "          - {connection: other, parent: EPIC-9}\n" if other_url else ""
    return f"""\
version: 1
connections:
  warehouse: {{type: fake_sql, url: "sqlite:///x.db"}}
  tracker: {{type: test_tracker, url: "{url}"{pages}}}
{other}cycles:
  - {{id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won: {{connection: warehouse, query: "SELECT 1"}}
objectives:
  - id: launch
    title: Launch checkout v2
    cycle: 2026-Q4
    key_results:
      - id: launch_epic
        title: Ship the launch epic
        metric: won
        kind: increase
        start: 0
        target: 10
        work:
          - {{connection: tracker, parent: EPIC-1, backlink: {str(backlink).lower()}}}
{other_work}"""


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def tracker() -> Iterator[tuple[SandboxServer, TrackerData]]:
    data = TrackerData()
    for key, title, parent in (
        ("OKR-13", "Checkout page", "EPIC-1"),
        ("OKR-14", "Payment form", "EPIC-1"),
        ("OKR-15", "Receipts", "EPIC-1"),
        ("OKR-99", "Unrelated", "EPIC-2"),
    ):
        data.add(key, title, parent)
        data.issues[key].updated = HOUR_AGO
    with SandboxServer(tracker_app(data), name="tracker") as server:
        yield server, data


def store(database_url: str, config: Config) -> Engine:
    engine = make_engine(database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        sync_definitions(session, config, datetime.now(UTC))
    return engine


def work_sync(engine: Engine, config: Config, clock: Clock) -> tuple[WorkSync, Connections]:
    connections = Connections(config, CONNECTORS_WITH_TRACKER)
    work = WorkSync(
        engine, config, connections, clock=clock, redactor=Redactor(), instance_id="test"
    )
    return work, connections


def items(engine: Engine, *, linked: bool = True) -> dict[str, WorkItemRow]:
    with session_scope(engine) as session:
        query = select(WorkItemRow)
        if linked:
            query = query.where(col(WorkItemRow.unlinked_at).is_(None))
        rows = session.exec(query).all()
        for row in rows:
            session.expunge(row)
        return {row.item_key: row for row in rows}


def paths(server: SandboxServer) -> list[str]:
    return [record.path for record in server.requests]


def run(scenario: Callable[[], object]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_first_read_is_full_then_only_changes_are_read(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, data = tracker
    config = load_config_text(config_text(server.url), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        first = await work.refresh()
        assert (first.reads, first.full_reads, first.added) == (1, 1, 3)
        assert [(r.path, r.query) for r in server.requests] == [("/issues", "q=EPIC-1")]
        stored = items(engine)
        assert sorted(stored) == ["OKR-13", "OKR-14", "OKR-15"]
        assert stored["OKR-13"].key_result_id == "launch_epic"
        assert stored["OKR-13"].state == "todo"
        assert stored["OKR-13"].first_linked_at == clock.now

        server.reset()
        clock.advance(minutes=1)
        assert (await work.refresh()).reads == 0  # not due: every 10m by default
        assert server.requests == []
        assert work.next_due == clock.now + timedelta(minutes=9)

        data.change("OKR-14", state="done")
        clock.advance(minutes=10)
        second = await work.refresh()
        assert (second.reads, second.full_reads, second.changed) == (1, 0, 1)
        assert paths(server) == ["/issues"]  # no reconciliation yet (hourly)
        since = server.requests[0].query.split("updated_since=")[1]
        asked = datetime.fromisoformat(httpx.QueryParams(f"s={since}")["s"])
        assert asked == clock.now - timedelta(minutes=11) - timedelta(minutes=2)  # overlap
        done = items(engine)["OKR-14"]
        assert done.state == "done"
        assert done.done_at is not None
        await connections.aclose()

    run(scenario)


def test_an_item_that_leaves_the_query_is_unlinked_and_linked_again_when_it_returns(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, data = tracker
    config = load_config_text(config_text(server.url), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        await work.refresh()
        first_linked = items(engine)["OKR-15"].first_linked_at
        data.change("OKR-15", parent="EPIC-2")
        server.reset()
        clock.advance(minutes=61)  # the hourly reconciliation is due
        report = await work.refresh()
        assert (report.reconciliations, report.unlinked) == (1, 1)
        assert paths(server) == ["/issues", "/issue-keys"]
        assert sorted(items(engine)) == ["OKR-13", "OKR-14"]
        gone = items(engine, linked=False)["OKR-15"]
        assert gone.unlinked_at == clock.now  # kept, as history

        data.change("OKR-15", parent="EPIC-1")
        clock.advance(minutes=1)
        back = await work.refresh(forced=True)
        assert back.added == 1
        again = items(engine)["OKR-15"]
        assert again.unlinked_at is None
        assert again.first_linked_at == first_linked
        await connections.aclose()

    run(scenario)


@pytest.mark.parametrize(("pages", "full"), [((100, 5000), True), ((1, 5000), False)])
def test_a_small_entry_is_reconciled_by_one_full_read(
    database_url: str,
    tracker: tuple[SandboxServer, TrackerData],
    pages: tuple[int, int],
    full: bool,
) -> None:
    server, data = tracker
    text = config_text(server.url, pages=f", pages: [{pages[0]}, {pages[1]}]")
    config = load_config_text(text, CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        await work.refresh()
        data.change("OKR-15", parent="EPIC-2")
        data.change("OKR-13", state="done")
        server.reset()
        clock.advance(minutes=61)  # the hourly reconciliation is due
        report = await work.refresh()
        assert (report.reconciliations, report.unlinked, report.changed) == (1, 1, 1)
        assert report.full_reads == int(full)
        if full:  # 3 items fit one page: one full read answers the changes and the ids
            assert paths(server) == ["/issues"]
            assert "updated_since=" not in server.requests[0].query
        else:  # 3 pages of 1 item against 1 for the changes and 1 for the ids
            assert paths(server) == ["/issues", "/issue-keys"]
        assert sorted(items(engine)) == ["OKR-13", "OKR-14"]
        assert items(engine, linked=False)["OKR-15"].unlinked_at == clock.now
        clock.advance(minutes=10)  # the next read is incremental again
        server.reset()
        assert (await work.refresh()).full_reads == 0
        assert "updated_since=" in server.requests[0].query
        await connections.aclose()

    run(scenario)


def test_backlinks_are_put_once_and_again_only_on_a_material_change(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, data = tracker
    config = load_config_text(config_text(server.url, backlink=True), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    def set_progress(progress: str, status: str) -> None:
        with session_scope(engine) as session:
            row = session.get(KeyResultRow, "launch_epic")
            assert row is not None
            row.progress, row.status = Decimal(progress), status
            session.add(row)

    async def scenario() -> None:
        first = await work.refresh()
        assert first.backlinks_put == 3
        assert data.link_puts == 3
        assert len(data.links) == 3
        title = data.links[("OKR-13", "okrsync:key-result:launch_epic")]["title"]
        assert title == "OKR: Ship the launch epic (no data, no data)"
        assert items(engine)["OKR-13"].backlink_ref == "link-1"

        await work.refresh(forced=True)
        assert data.link_puts == 3  # nothing shown changed: no call

        set_progress("0.504", "on_track")
        server.reset()
        work.key_results_changed({"launch_epic"})  # a run recorded a new value
        await work.settled()
        assert data.link_puts == 6
        assert {r.method for r in server.requests} == {"PUT"}  # the links only, no read
        assert len(data.links) == 3  # updated in place
        title = data.links[("OKR-13", "okrsync:key-result:launch_epic")]["title"]
        assert title == "OKR: Ship the launch epic (50%, on track)"

        set_progress("0.4951", "on_track")  # still shows 50 %
        await work.refresh(forced=True)
        assert data.link_puts == 6

        data.change("OKR-13", parent="EPIC-2")
        report = await work.refresh(forced=True)
        assert report.backlinks_removed == 1
        assert sorted(key for key, _ in data.links) == ["OKR-14", "OKR-15"]
        gone = items(engine, linked=False)["OKR-13"]
        assert (gone.backlink_ref, gone.backlink_shown) == (None, None)
        await connections.aclose()

        # the config now says backlink: false: a restarted process takes the links off
        plain = load_config_text(config_text(server.url), CONNECTORS_WITH_TRACKER)
        restarted, again = work_sync(engine, plain, clock)
        report = await restarted.refresh(forced=True)
        assert report.backlinks_removed == 2
        assert data.links == {}
        assert all(row.backlink_shown is None for row in items(engine).values())
        assert (await restarted.refresh(forced=True)).backlinks_removed == 0
        await again.aclose()

    run(scenario)


def test_a_failing_tracker_is_reported_on_its_connection_and_the_others_go_on(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, _ = tracker
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    config = load_config_text(config_text(server.url, other_url=dead), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        report = await work.refresh()
        assert report.reads == 1  # the healthy tracker's entry
        assert len(report.errors) == 1
        assert report.errors[0].startswith("other: work read for kr:launch_epic failed")
        assert sorted(items(engine)) == ["OKR-13", "OKR-14", "OKR-15"]
        with session_scope(engine) as session:
            failing = session.get(ConnectionStateRow, "other")
            healthy = session.get(ConnectionStateRow, "tracker")
            assert failing is not None and healthy is not None
            assert (failing.status, failing.consecutive_failures) == ("failing", 1)
            assert failing.last_error is not None
            assert healthy.status == "ok"
        # the failed entry waits for its next tick instead of being retried at once
        assert work.next_due == clock.now + timedelta(minutes=10)
        assert (await work.refresh()).errors == []
        await connections.aclose()

    run(scenario)


SECRET = "tracker-hook-secret"


def test_a_tracker_webhook_refreshes_its_work_within_seconds(
    tmp_path: Path, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, data = tracker
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "OKRSYNC_HOOK_SECRET_TRACKER").write_text(SECRET)
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path / 'okrsync.db'}"), secrets_dir=secrets
    )
    registry = Registry(CONNECTORS_WITH_TRACKER)
    config = load_config_text(config_text(server.url), registry.connectors)
    app = App.open(settings, config=config, registry=registry)
    app.apply_definitions()
    body = b'{"webhookEvent": "jira:issue_updated"}'

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        stamp = str(int(time.time()))
        headers = {"X-Okrsync-Timestamp": stamp, "X-Okrsync-Signature": sign(SECRET, stamp, body)}
        return await http.post("/hooks/tracker", content=body, headers=headers)

    async def arrives(check: Callable[[], bool], started: float) -> None:
        while not check():
            assert time.monotonic() - started < 2, "the webhook's refresh did not arrive in 2 s"
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        # served on this loop, as ``okrsync run`` serves it beside the daemon
        context = ApiContext.from_app(app)
        assert context.work is not None
        http_server = HttpServer(build_app(context), bind("127.0.0.1", 0))
        await http_server.start()
        host, port = http_server.address
        try:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                started = time.monotonic()
                assert (await post(http)).status_code == 202
                await arrives(lambda: len(items(app.engine)) == 3, started)

                data.change("OKR-13", state="in_progress")
                server.reset()
                started = time.monotonic()
                assert (await post(http)).status_code == 202
                await arrives(lambda: items(app.engine)["OKR-13"].state == "in_progress", started)
            # an incremental read (only what changed) and the ids-only reconciliation
            assert sorted(paths(server)) == ["/issue-keys", "/issues"]
            queries = " ".join(record.query for record in server.requests)
            assert "updated_since=" in queries
        finally:
            await http_server.stop()
            await app.aclose()

    run(scenario)


def test_replicas_take_turns_on_an_entry_with_row_leases(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, _ = tracker
    config = load_config_text(config_text(server.url), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    (entry,) = config.key_result("launch_epic").work
    work_items.ensure_reads(engine, {entry.key: "tracker"})
    lease = timedelta(minutes=2)
    assert work_items.claim(engine, [entry.key], owner="a", now=clock.now, lease=lease) == {
        entry.key
    }
    other, connections = work_sync(engine, config, clock)  # replica "test"

    async def scenario() -> None:
        assert (await other.refresh()).reads == 0  # "a" holds it
        assert server.requests == []
        assert other.next_due == clock.now + timedelta(seconds=5)  # looks again soon, no spin
        clock.advance(minutes=3)  # "a" died: its lease ran out
        assert (await other.refresh()).reads == 1
        assert work_items.claim(engine, [entry.key], owner="a", now=clock.now, lease=lease) == {
            entry.key
        }  # released by the read that recorded
        await connections.aclose()

    run(scenario)


def test_a_resting_connection_is_not_asked_until_its_pause_ends(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, _ = tracker
    config = load_config_text(config_text(server.url), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    until = clock.now + timedelta(minutes=30)
    with session_scope(engine) as session:
        session.add(
            ConnectionStateRow(
                name="tracker", type="test_tracker", status="paused_quota", paused_until=until
            )
        )
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        report = await work.refresh()
        assert report.reads == 0
        assert "paused until" in report.errors[0]
        assert server.requests == []  # out of quota: not one call
        assert work.next_due == until
        clock.advance(minutes=31)
        assert (await work.refresh()).reads == 1
        await connections.aclose()

    run(scenario)


def test_a_connections_entries_are_read_a_few_at_a_time(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, data = tracker
    data.delay = 0.2
    key_results = "".join(
        f"""\
      - id: kr{n}
        title: Result {n}
        metric: won
        kind: increase
        start: 0
        target: 10
        work: [{{connection: tracker, parent: EPIC-{n}}}]
"""
        for n in range(8)
    )
    text = config_text(server.url).split("    key_results:\n")[0] + "    key_results:\n"
    config = load_config_text(text + key_results, CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    work, connections = work_sync(engine, config, Clock(datetime.now(UTC)))

    async def scenario() -> None:
        assert (await work.refresh()).reads == 8
        assert 2 <= data.most_in_flight <= 4  # side by side, and bounded
        await connections.aclose()

    run(scenario)


def test_cycle_placeholders_are_the_objectives_cycle(
    tmp_path: Path, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, _ = tracker
    text = config_text(server.url).replace("parent: EPIC-1,", "parent: 'EPIC-{cycle_end}',")
    config = load_config_text(text, CONNECTORS_WITH_TRACKER)
    engine = store(f"sqlite:///{tmp_path / 'okrsync.db'}", config)
    work, connections = work_sync(engine, config, Clock(datetime.now(UTC)))

    async def scenario() -> None:
        await work.refresh(forced=True)
        assert [r.query for r in server.requests] == ["q=EPIC-2026-12-31"]
        await connections.aclose()

    run(scenario)


def test_a_closed_cycles_work_is_no_longer_read_and_stays_linked(
    database_url: str, tracker: tuple[SandboxServer, TrackerData]
) -> None:
    server, _data = tracker
    config = load_config_text(config_text(server.url, backlink=True), CONNECTORS_WITH_TRACKER)
    engine = store(database_url, config)
    clock = Clock(datetime.now(UTC))
    work, connections = work_sync(engine, config, clock)

    async def scenario() -> None:
        first = await work.refresh()
        assert (first.reads, first.backlinks_put) == (1, 3)
        CycleCloser(engine, config, clock=clock).close("2026-Q4", by="command")
        server.reset()
        clock.advance(minutes=61)  # a read and a reconciliation would be due
        assert (await work.refresh()).reads == 0
        assert (await work.refresh(forced=True)).reads == 0
        work.key_results_changed({"launch_epic"})
        await work.settled()
        assert server.requests == []  # the tracker is not asked at all
        assert work.next_due is None  # nothing left to wake the daemon for
        await connections.aclose()

        restarted, again = work_sync(engine, config, clock)  # a new process: links stay too
        report = await restarted.refresh(forced=True)
        assert (report.reads, report.unlinked, report.backlinks_removed) == (0, 0, 0)
        await again.aclose()
        assert server.requests == []
        assert sorted(items(engine)) == ["OKR-13", "OKR-14", "OKR-15"]  # kept as history
        assert all(row.backlink_ref is not None for row in items(engine).values())

    run(scenario)
