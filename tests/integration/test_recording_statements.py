"""Recording a batch costs the same SQL statements for 50 key results as for 500 (SQLite and
PostgreSQL): no ORM object, SELECT or sequence UPDATE per key result, per mirror or per delivery.

Every key result changes and has a mirror with ``min_change`` (the last state queued to each
mirror is looked up) and ``stale_after``; every objective has a digest mirror (its other key
results are read). A second pass ends a stale episode of each key result as its value changes
(the "fresh again" announcements are looked up before they are queued).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import SecretStr
from sqlalchemy import event, func, update
from sqlmodel import col, select

from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.domain.evaluate import Evaluation
from okrsync.domain.planner import PlannedKeyResult
from okrsync.engine import recorder
from okrsync.plugins import Registry, load_registry
from okrsync.redaction import Redactor
from okrsync.sdk.connector import ConnectionConfig, Connector, MirrorSpec, Sink
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult, Status
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow, MirrorRow

SMALL, LARGE = 50, 500
PER_OBJECTIVE = 10


class BoardConnection(ConnectionConfig):
    type: Literal["board"] = "board"


class BoardMirror(MirrorSpec):
    lane: str = "main"


class BoardSink(Sink[BoardConnection, BoardMirror]):
    """Never pushed to here: the test records and stops before the dispatcher."""

    mirror_model = BoardMirror
    supports_digest = True

    async def push(
        self, update: KeyResultUpdate, mirror: BoardMirror, previous_ref: str | None
    ) -> PushResult:
        raise AssertionError("not dispatched in this test")

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: BoardMirror, previous_ref: str | None
    ) -> PushResult:
        raise AssertionError("not dispatched in this test")


def config_text(key_results: int) -> str:
    lines = [
        "version: 1",
        "connections:",
        '  warehouse: {type: sql, url: "sqlite:///:memory:"}',
        "  board: {type: board}",
        "cycles:",
        "  - {id: q4, start: 2026-10-01, end: 2026-12-31}",
        "metrics:",
        '  m: {connection: warehouse, query: "SELECT 1"}',
        "objectives:",
    ]
    for o in range(key_results // PER_OBJECTIVE):
        lines += [
            f"  - id: o{o:03d}",
            f"    title: Objective {o}",
            "    cycle: q4",
            "    mirrors: [{connection: board, lane: digest, min_change: 0.01}]",
            "    key_results:",
        ]
        for k in range(o * PER_OBJECTIVE, (o + 1) * PER_OBJECTIVE):
            lines += [
                f"      - id: kr{k:04d}",
                f"        title: Key result {k}",
                "        metric: m",
                "        kind: increase",
                "        start: 0",
                "        target: 1000",
                "        stale_after: 1h",
                "        mirrors: [{connection: board, min_change: 0.01}]",
            ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def app(database_url: str) -> Iterator[App]:
    registry = load_registry()
    board = Connector(
        type="board", summary="board", connection_model=BoardConnection, implementation=BoardSink
    )
    registry = Registry({**registry.connectors, "board": board})
    config = load_config_text(config_text(SMALL + LARGE), registry.connectors)
    app = App.open(Settings(database_url=SecretStr(database_url)), config=config, registry=registry)
    app.apply_definitions()
    yield app
    app.engine.dispose()


def planned(app: App) -> list[PlannedKeyResult]:
    config = app.config
    return [
        PlannedKeyResult(kr, objective, config.cycles[objective.cycle])
        for objective in config.objectives
        for kr in objective.key_results
    ]


def statements_to_record(app: App, items: list[PlannedKeyResult], value: int, now: datetime) -> int:
    """SQL statements sent to record ``items`` at ``value`` (each key result a distinct value)."""
    evaluated = [
        (
            Evaluation(Decimal(value + i), Decimal(value + i) / 1000, Status.ON_TRACK),
            item,
        )
        for i, item in enumerate(items)
    ]
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    event.listen(app.engine, "before_cursor_execute", count)
    try:
        done = recorder.record_all(app.engine, evaluated, run_id="r", now=now, redactor=Redactor())
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    assert all(r.changed and r.error is None for r in done)
    return len(sent)


def announce_every_stale_episode(app: App) -> None:
    """As the stale watch does: every key result's staleness was told to its mirrors."""
    with session_scope(app.engine) as session:
        session.execute(
            update(KeyResultRow).values(stale_announced_for=col(KeyResultRow.checked_at))
        )


def count_rows(app: App, table: Any) -> int:
    with session_scope(app.engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_recording_a_batch_takes_as_many_statements_for_50_as_for_500(app: App) -> None:
    assert recorder.BATCH >= LARGE  # one transaction each
    items = planned(app)
    small, large = items[:SMALL], items[SMALL : SMALL + LARGE]
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)

    cold = statements_to_record(app, small, 1, now), statements_to_record(app, large, 1, now)
    assert cold[0] == cold[1], cold
    assert count_rows(app, MeasurementRow) == SMALL + LARGE
    # each key result's own mirror, and its objective's digest while it moves by 1% or more
    kr_deliveries = SMALL + LARGE
    assert count_rows(app, DeliveryRow) > kr_deliveries

    announce_every_stale_episode(app)
    later = now + timedelta(hours=2)
    back = (
        statements_to_record(app, small, 500, later),
        statements_to_record(app, large, 500, later),
    )
    assert back[0] == back[1], back
    with session_scope(app.engine) as session:
        fresh = session.exec(
            select(func.count())
            .select_from(DeliveryRow)
            .where(col(DeliveryRow.measurement_id).is_(None))
        ).one()
        assert fresh >= SMALL + LARGE  # a "fresh again" per key result's own mirror at least
        still_announced = session.exec(
            select(func.count())
            .select_from(KeyResultRow)
            .where(col(KeyResultRow.stale_announced_for).is_not(None))
        ).one()
        assert still_announced == 0
        # every delivery took its mirror's next sequence number: no gap, no repeat per mirror
        for key, last_seq in session.exec(select(MirrorRow.key, MirrorRow.last_seq)):
            seqs = session.exec(
                select(DeliveryRow.seq)
                .where(DeliveryRow.mirror_key == key)
                .order_by(col(DeliveryRow.seq))
            ).all()
            assert len(set(seqs)) == len(seqs)
            assert not seqs or seqs[-1] <= last_seq
