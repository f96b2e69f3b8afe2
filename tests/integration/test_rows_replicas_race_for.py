"""Bookkeeping rows that replicas race to create on a fresh store: a metric's claim row and a
mirror-only connection's health row. The second replica's insert waits for the first one's
transaction and then does nothing, instead of failing on the unique key (which crashed a daemon
of a two-replica start on PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import event
from sqlmodel import Session, select

from okrsync.engine.metric_claims import MetricClaims
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.tables import ConnectionStateRow, MetricStateRow
from okrsync.store.upsert import add_missing


def test_the_second_insert_waits_for_the_first_and_keeps_its_row(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    failures: list[BaseException] = []
    first = Session(engine)
    add_missing(first, [ConnectionStateRow(name="slack", type="slack", status="ok")])

    def second_replica() -> None:
        try:
            with session_scope(engine) as session:
                add_missing(session, [ConnectionStateRow(name="slack", type="slack")])
        except BaseException as exc:
            failures.append(exc)

    if engine.dialect.name == "sqlite":
        first.commit()  # SQLite has one writer: the race is a sequence there
        second_replica()
    else:
        racer = threading.Thread(target=second_replica)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # it waits on the first replica's uncommitted row
        first.commit()
        racer.join(30)
    first.close()
    assert failures == []
    with session_scope(engine) as session:
        [row] = session.exec(select(ConnectionStateRow)).all()
        assert (row.name, row.status) == ("slack", "ok")  # the winner's row stands
    engine.dispose()


def test_claim_rows_are_added_in_batches_and_existing_ones_are_kept(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    ran = datetime(2026, 12, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(MetricStateRow(name="m0001", last_run_at=ran))
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    names = [f"m{n:04d}" for n in range(1200)]
    MetricClaims(engine, owner="r1", lease=timedelta(minutes=5)).ensure_rows(names)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) <= 3  # 1,199 missing rows in batches of 500, not one per metric
    with session_scope(engine) as session:
        rows = {r.name: r for r in session.exec(select(MetricStateRow)).all()}
    assert sorted(rows) == names
    assert rows["m0001"].last_run_at is not None  # present before: untouched
    engine.dispose()
