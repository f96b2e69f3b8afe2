"""One sync pass in-process against the store (SQLite and PostgreSQL) and real sockets.

Isolation of failing connections, the outbox surviving a crash, retries with backoff, superseded
deliveries, external references handed back to a sink, and archived definitions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import SecretStr
from sqlalchemy import event
from sqlmodel import select

from connectors.webhook import WebhookSink
from connectors.webhook.receiver import ReceiverState, receiver_app
from okrsync.app import App
from okrsync.config import Config, load_config_text
from okrsync.domain.planner import plan_queries
from okrsync.engine import recorder
from okrsync.engine.dispatcher import DispatchReport
from okrsync.engine.scheduled_pushes import ScheduledPushes
from okrsync.engine.sync import PlanEvaluator, RunReport, evaluate_plan, fetch_all
from okrsync.errors import ConfigErrors, QuotaExhaustedError
from okrsync.plugins import Registry, load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.connector import (
    ConnectionConfig,
    Connector,
    MirrorSpec,
    QuerySpec,
    Sink,
    Source,
)
from okrsync.sdk.http import RetryPolicy
from okrsync.sdk.models import KeyResultUpdate, PushResult, Query, Reading
from okrsync.settings import Settings
from okrsync.store import views
from okrsync.store.db import session_scope
from okrsync.store.tables import ConnectionStateRow, DeliveryRow, KeyResultRow, RunRow


class FastWebhookSink(WebhookSink):
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


class NotesConnection(ConnectionConfig):
    type: Literal["notes"] = "notes"


class NotesMirror(MirrorSpec):
    board: str = "okr"


class NotesSink(Sink[NotesConnection, NotesMirror]):
    """A sink that creates a note once and edits it afterwards, like a Slack message."""

    mirror_model = NotesMirror
    notes: ClassVar[dict[str, str]] = {}
    calls: ClassVar[list[str | None]] = []

    async def push(
        self, update: KeyResultUpdate, mirror: NotesMirror, previous_ref: str | None
    ) -> PushResult:
        self.calls.append(previous_ref)
        ref = previous_ref or f"note-{len(self.notes) + 1}"
        self.notes[ref] = f"{update.key_result_id}={update.value}"
        return PushResult(ref=ref)


class QuotaConnection(ConnectionConfig):
    type: Literal["quota"] = "quota"


class QuotaQuery(QuerySpec):
    question: str = "how much"


class SpentQuotaSource(Source[QuotaConnection, QuotaQuery]):
    """A source whose call budget is spent until a known time (as Salesforce's guard reports)."""

    query_model = QuotaQuery
    resume_at: ClassVar[float] = 0.0
    asked: ClassVar[int] = 0

    async def fetch_one(self, query: Query[QuotaQuery]) -> Reading:
        type(self).asked += 1
        raise QuotaExhaustedError("daily API allowance used up", resume_at=self.resume_at)


CONFIG = """\
version: 1
connections:
  good: {type: sql, url: "sqlite:///GOOD"}
  bad: {type: sql, url: "sqlite:///MISSING/nowhere.db"}
  hook: {type: webhook, url: "HOOK/okr"}
  notes: {type: notes}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: good, query: "SELECT COUNT(*) FROM deals"}
  broken: {connection: bad, query: "SELECT 1"}
objectives:
  - id: o
    title: Objective
    cycle: q4
    key_results:
      - id: deals
        title: Ten deals
        metric: deals
        kind: increase
        start: 0
        target: 10
        mirrors: [{connection: hook}, {connection: notes}]
      - {id: other, title: Other, metric: broken, kind: increase, start: 0, target: 1}
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 12, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    database_url: str
    warehouse: Path
    hook: SandboxServer
    receiver: ReceiverState
    registry: Registry
    clock: Clock
    text: str

    def config(self, text: str | None = None) -> Config:
        return load_config_text(text or self.text, self.registry.connectors)

    def app(self, text: str | None = None) -> App:
        settings = Settings(database_url=SecretStr(self.database_url))
        return App.open(
            settings, config=self.config(text), registry=self.registry, clock=self.clock
        )

    def add_deal(self) -> None:
        with sqlite3.connect(self.warehouse) as db:
            db.execute("INSERT INTO deals DEFAULT VALUES")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO deals DEFAULT VALUES")
    real = load_registry()
    connectors = dict(real.connectors)
    connectors["webhook"] = Connector(
        type="webhook",
        summary="webhook with fast retries",
        connection_model=real.connectors["webhook"].connection_model,
        implementation=FastWebhookSink,
    )
    connectors["notes"] = Connector(
        type="notes", summary="notes", connection_model=NotesConnection, implementation=NotesSink
    )
    connectors["quota"] = Connector(
        type="quota",
        summary="spent quota",
        connection_model=QuotaConnection,
        implementation=SpentQuotaSource,
    )
    NotesSink.notes.clear()
    NotesSink.calls.clear()
    app = receiver_app()
    with SandboxServer(app, name="hook") as hook:
        text = CONFIG.replace("GOOD", str(warehouse)).replace("MISSING", str(tmp_path / "no"))
        yield World(
            database_url,
            warehouse,
            hook,
            app.state.receiver,
            Registry(connectors),
            Clock(),
            text.replace("HOOK", hook.url),
        )


async def sync(world: World, **kw: Any) -> Any:
    app = world.app()
    try:
        app.apply_definitions()
        return await app.sync.run_once(**kw)
    finally:
        await app.aclose()


async def test_a_failing_connection_does_not_stop_the_others(world: World) -> None:
    report = await sync(world)
    assert [r.key_result_id for r in report.recorded if r.changed] == ["deals"]
    assert len(report.errors) == 1 and "connection 'bad'" in report.errors[0]
    app = world.app()
    with session_scope(app.engine) as session:
        states = {s.name: s.status for s in session.exec(select(ConnectionStateRow))}
        run = session.get(RunRow, report.run_id)
        (objective,) = views.status_view(session, world.clock())
        shown = {c.name: c.as_json() for c in views.connections_view(session)}
    await app.aclose()
    # hook and notes are only mirrors: their health follows their deliveries
    assert states == {"good": "ok", "bad": "failing", "hook": "ok", "notes": "ok"}
    assert shown["bad"]["status"] == "failing"
    assert "connection 'bad'" in shown["bad"]["last_error"]
    assert run is not None and run.status == "partial" and run.errors == 1
    other = next(kr for kr in objective.key_results if kr.id == "other")
    assert other.value is None and "connection 'bad'" in (other.last_error or "")


async def test_outbox_rows_survive_a_crash_before_delivery(world: World) -> None:
    report = await sync(world, dispatch=False)  # the process "dies" after the commit
    assert report.changed == 1
    assert world.receiver.received == []
    app = world.app()  # a restarted daemon
    first = await app.dispatcher.dispatch_due()
    again = await app.dispatcher.dispatch_due()
    await app.aclose()
    assert first.delivered == 2 and again.delivered == 0
    assert len(world.receiver.received) == 1
    assert NotesSink.notes == {"note-1": "deals=1"}


async def test_failed_delivery_is_retried_after_backoff(world: World) -> None:
    world.hook.faults.add(Fault(kind=FaultKind.STATUS, status=503, times=-1))
    report = await sync(world)
    assert report.dispatch.failed == 1 and "503" in report.dispatch.errors[0]
    world.hook.faults.clear()
    app = world.app()
    too_soon = await app.dispatcher.dispatch_due()
    world.clock.now += timedelta(seconds=6)
    later = await app.dispatcher.dispatch_due()
    with session_scope(app.engine) as session:
        row = session.exec(select(DeliveryRow).where(DeliveryRow.status == "done")).all()
    await app.aclose()
    assert too_soon.delivered == 0 and later.delivered == 1
    assert len(world.receiver.received) == 1
    assert {r.attempts for r in row if r.mirror_key.startswith("deals/hook")} == {2}


async def test_only_the_newest_pending_state_is_pushed(world: World) -> None:
    world.hook.faults.add(Fault(kind=FaultKind.STATUS, status=500, times=-1))
    await sync(world)
    world.add_deal()
    world.clock.now += timedelta(minutes=1)
    await sync(world)
    world.hook.faults.clear()
    world.clock.now += timedelta(hours=1)
    app = world.app()
    report = await app.dispatcher.dispatch_due()
    with session_scope(app.engine) as session:
        statuses = sorted(
            r.status
            for r in session.exec(select(DeliveryRow))
            if r.mirror_key.startswith("deals/hook")
        )
    await app.aclose()
    assert report.delivered == 1
    assert statuses == ["done", "superseded"]
    (delivery,) = world.receiver.received
    assert delivery.body["value"] == "2"


async def test_a_sink_edits_what_it_created_instead_of_creating_again(world: World) -> None:
    await sync(world)
    world.add_deal()
    await sync(world)
    world.add_deal()
    await sync(world)
    assert NotesSink.calls == [None, "note-1", "note-1"]
    assert NotesSink.notes == {"note-1": "deals=3"}
    assert len(world.receiver.received) == 3


async def test_unchanged_values_create_no_delivery(world: World) -> None:
    await sync(world)
    report = await sync(world)
    assert report.changed == 0 and report.dispatch.delivered == 0
    assert len(world.receiver.received) == 1


async def test_removed_definitions_are_archived_with_their_history(world: World) -> None:
    await sync(world)
    trimmed = world.text.replace(
        "      - {id: other, title: Other, metric: broken, kind: increase, start: 0, target: 1}\n",
        "",
    )
    app = world.app(trimmed)
    changes = app.apply_definitions()
    with session_scope(app.engine) as session:
        (objective,) = views.status_view(session, world.clock())
        kept = views.history(session, "deals")
    await app.aclose()
    assert changes.archived == ["key_results:other"]
    assert [kr.id for kr in objective.key_results] == ["deals"]
    assert len(kept) == 1


async def test_a_connection_failing_pass_after_pass_is_rested(world: World) -> None:
    calls = [(await sync(world)).api_calls for _ in range(3)]
    assert calls == [2, 2, 2]  # good + bad each asked once per pass
    app = world.app()
    with session_scope(app.engine) as session:
        bad = session.get(ConnectionStateRow, "bad")
        assert bad is not None
        assert bad.status == "failing" and bad.consecutive_failures == 3
        assert bad.paused_until == world.clock.now + timedelta(seconds=30)
    await app.aclose()
    rested = await sync(world)
    assert rested.api_calls == 1  # only the good connection was asked
    assert any("paused until" in e for e in rested.errors)
    world.clock.now += timedelta(seconds=31)
    assert (await sync(world)).api_calls == 2  # asked again once the pause is over


def paced(world: World, hook: str, notes: str = "") -> str:
    return world.text.replace(
        "mirrors: [{connection: hook}, {connection: notes}]",
        f"mirrors: [{{connection: hook{hook}}}, {{connection: notes{notes}}}]",
    )


async def sync_with(world: World, text: str) -> Any:
    app = world.app(text)
    try:
        app.apply_definitions()
        return await app.sync.run_once()
    finally:
        await app.aclose()


async def dispatch(world: World, text: str) -> Any:
    app = world.app(text)
    try:
        return await app.dispatcher.dispatch_due()
    finally:
        await app.aclose()


async def test_min_interval_defers_a_push_and_then_sends_the_newest(world: World) -> None:
    text = paced(world, ", min_interval: 10m")
    await sync_with(world, text)
    assert len(world.receiver.received) == 1
    for _ in range(2):
        world.add_deal()
        world.clock.now += timedelta(minutes=1)
        await sync_with(world, text)
    assert len(world.receiver.received) == 1  # held back
    world.clock.now += timedelta(minutes=8)
    assert (await dispatch(world, text)).delivered == 1
    assert [d.body["value"] for d in world.receiver.received] == ["1", "3"]
    assert NotesSink.calls == [None, "note-1", "note-1"]  # the other mirror was not paced


async def test_min_change_skips_small_moves(world: World) -> None:
    text = paced(world, "", ", min_change: 0.15")
    await sync_with(world, text)  # progress 0.1
    world.add_deal()
    await sync_with(world, text)  # 0.2: a 10-point move, below the threshold
    world.add_deal()
    await sync_with(world, text)  # 0.3: 20 points above the last one pushed
    assert NotesSink.notes == {"note-1": "deals=3"}
    assert NotesSink.calls == [None, "note-1"]
    assert len(world.receiver.received) == 3


async def test_quiet_hours_hold_pushes_until_they_end(world: World) -> None:
    text = paced(world, ", quiet_hours: {start: '11:00', end: '13:00', timezone: UTC}")
    report = await sync_with(world, text)  # the clock says 12:00 UTC
    assert report.dispatch.delivered == 1  # notes only
    assert world.receiver.received == []
    world.clock.now += timedelta(minutes=59)
    assert (await dispatch(world, text)).delivered == 0
    world.clock.now += timedelta(minutes=1)
    assert (await dispatch(world, text)).delivered == 1
    assert len(world.receiver.received) == 1


async def test_a_digest_mirror_gets_the_whole_objective_in_one_delivery(world: World) -> None:
    text = world.text.replace(
        "    cycle: q4\n    key_results:",
        "    cycle: q4\n    mirrors: [{connection: hook, path: /digest}]\n    key_results:",
    )
    await sync_with(world, text)
    world.add_deal()
    world.add_deal()
    await sync_with(world, text)
    digests = [d for d in world.receiver.received if d.path == "/okr/digest"]
    assert len(digests) == 2
    latest = digests[-1].body
    assert latest["event"] == "objective.updated"
    assert latest["objective"]["id"] == "o"
    assert [kr["key_result"]["id"] for kr in latest["key_results"]] == ["deals", "other"]
    assert latest["key_results"][0]["value"] == "3"
    assert latest["progress"] == "0.15"  # (0.3 + no data as 0) / 2


def test_a_digest_mirror_needs_a_sink_that_can_show_one(world: World) -> None:
    text = world.text.replace(
        "    cycle: q4\n    key_results:",
        "    cycle: q4\n    mirrors: [{connection: notes}]\n    key_results:",
    )
    with pytest.raises(ConfigErrors, match="cannot mirror a whole objective"):
        world.config(text)


async def test_scheduled_mirrors_push_on_their_own_cadence_once_per_tick(world: World) -> None:
    text = paced(world, ", on_change: false, schedule: every 1h").replace(
        "    cycle: q4\n    key_results:",
        "    cycle: q4\n    mirrors:\n"
        "      - {connection: hook, path: /weekly, on_change: false, schedule: '0 9 * * 1'}\n"
        "    key_results:",
    )
    await sync_with(world, text)
    assert world.receiver.received == []  # neither hook mirror pushes on change
    assert NotesSink.calls == [None]
    app = world.app(text)
    pushes = ScheduledPushes(app.engine, app.config, clock=world.clock)
    assert pushes.enqueue_due() == (0, world.clock.now + timedelta(hours=1))  # starts the clock
    world.clock.now += timedelta(hours=1)
    assert pushes.enqueue_due()[0] == 1
    assert pushes.enqueue_due()[0] == 0  # that tick is done
    await app.dispatcher.dispatch_due()
    (hourly,) = world.receiver.received
    assert hourly.path == "/okr" and hourly.body["value"] == "1"
    # Friday 13:00 → Monday 09:00 UTC: the weekly digest, and the hourly ones coalesced into one
    world.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert pushes.enqueue_due()[0] == 2
    await app.dispatcher.dispatch_due()
    await app.aclose()
    paths = [d.path for d in world.receiver.received]
    assert sorted(paths) == ["/okr", "/okr", "/okr/weekly"]
    weekly = next(d.body for d in world.receiver.received if d.path == "/okr/weekly")
    assert weekly["event"] == "objective.updated"


def test_a_mirror_that_never_pushes_is_refused(world: World) -> None:
    with pytest.raises(ConfigErrors, match="needs a schedule"):
        world.config(paced(world, ", on_change: false"))


async def test_a_spent_quota_pauses_the_connection_until_it_resets(world: World) -> None:
    text = (
        world.text.replace(
            "  notes: {type: notes}\n", "  notes: {type: notes}\n  crm: {type: quota}\n"
        )
        .replace(
            '  broken: {connection: bad, query: "SELECT 1"}\n',
            '  broken: {connection: bad, query: "SELECT 1"}\n  bookings: {connection: crm}\n',
        )
        .replace(
            "      - {id: other,",
            "      - {id: sales, title: Sales, metric: bookings, kind: increase, start: 0,"
            " target: 9}\n"
            "      - {id: other,",
        )
    )
    resume = world.clock.now + timedelta(hours=3)
    SpentQuotaSource.resume_at = resume.timestamp()
    SpentQuotaSource.asked = 0
    first = await sync_with(world, text)
    assert SpentQuotaSource.asked == 1
    assert any("daily API allowance used up" in e for e in first.errors)
    app = world.app(text)
    with session_scope(app.engine) as session:
        crm = session.get(ConnectionStateRow, "crm")
        assert crm is not None
        assert crm.status == "paused_quota"  # paused, not failed
        assert crm.paused_until == resume
    await app.aclose()
    world.clock.now += timedelta(hours=1)
    await sync_with(world, text)
    assert SpentQuotaSource.asked == 1  # not asked while paused
    world.clock.now += timedelta(hours=2, seconds=1)
    await sync_with(world, text)
    assert SpentQuotaSource.asked == 2


async def test_a_lone_daemon_takes_over_the_leases_of_a_crashed_one(world: World) -> None:
    await sync(world, dispatch=False)
    app = world.app()
    claimed = app.dispatcher._claim(DispatchReport())  # a daemon claims, then dies
    assert len(claimed) == 2
    assert (await app.dispatcher.dispatch_due()).delivered == 0  # leased: not yet
    assert app.dispatcher.release_leases() == 2
    world.clock.now += app.dispatcher.settle  # a push the crash cut short may still land
    world.clock.now += timedelta(milliseconds=1)
    assert (await app.dispatcher.dispatch_due()).delivered == 2
    await app.aclose()
    assert len(world.receiver.received) == 1


async def test_a_pass_is_recorded_in_batches_and_a_bad_key_result_keeps_its_neighbours(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = world.app()
    app.apply_definitions()
    plan = plan_queries(app.config)
    readings = await app.sync.fetch(plan, RunReport("r1"))
    evaluated = evaluate_plan(app.config, plan, readings, "r1", world.clock.now)
    commits: list[object] = []
    event.listen(app.engine, "commit", commits.append)
    monkeypatch.setattr(recorder, "BATCH", 1)
    recorder.record_all(
        app.engine, evaluated, run_id="r1", now=world.clock.now, redactor=Redactor()
    )
    assert len(commits) == 2  # deals, other: one transaction each
    monkeypatch.setattr(recorder, "BATCH", 500)
    commits.clear()
    recorder.record_all(
        app.engine, evaluated, run_id="r1", now=world.clock.now, redactor=Redactor()
    )
    assert len(commits) == 1
    with session_scope(app.engine) as session:  # "other" leaves the store behind the pass's back
        session.delete(session.get(KeyResultRow, "other"))
    world.add_deal()
    readings = await app.sync.fetch(plan, RunReport("r2"))
    evaluated = evaluate_plan(app.config, plan, readings, "r2", world.clock.now)
    # "other" comes first: the one-by-one fallback must go on past it to "deals"
    evaluated.sort(key=lambda pair: pair[1].key_result.id != "other")
    done = recorder.record_all(
        app.engine, evaluated, run_id="r2", now=world.clock.now, redactor=Redactor()
    )
    assert [r.key_result_id for r in done] == ["other", "deals"]
    assert "'other' is not in the store" in (done[0].error or "")
    assert done[1].changed and done[1].error is None
    with session_scope(app.engine) as session:
        deals = session.get(KeyResultRow, "deals")
        assert deals is not None and deals.value == 2  # its batch failed; it was recorded alone
    await app.aclose()


async def test_key_results_are_evaluated_as_soon_as_their_connection_answers(
    world: World,
) -> None:
    app = world.app()
    plan = plan_queries(app.config)
    readings = await app.sync.fetch(plan, RunReport("r1"))
    good = [r for r in readings.values() if r.ok]
    bad = [r for r in readings.values() if not r.ok]
    evaluator = PlanEvaluator(app.config, plan, "r1", world.clock)
    assert evaluator.waiting == 2
    evaluator.answered(good)  # "deals" reads only the good connection: evaluated now
    assert evaluator.waiting == 1
    evaluator.answered(bad)
    assert evaluator.waiting == 0
    heard: list[list[Reading]] = []  # a run feeds its evaluator from here, connection by one
    await fetch_all(plan, app.connections, Redactor(), on_answered=heard.append)
    assert sorted(len(batch) for batch in heard) == [1, 1]  # good and bad: one query each
    together = evaluate_plan(app.config, plan, readings, "r1", world.clock.now)
    assert [(e.value, e.error, i.key_result.id) for e, i in evaluator.results()] == [
        (e.value, e.error, i.key_result.id) for e, i in together
    ]
    await app.aclose()
