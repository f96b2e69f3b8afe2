"""Status enums are stored as their plain text, and read back equal to the enum members.

The columns stay strings: a row written with ``DeliveryStatus.DONE`` holds ``done`` (not the
member's name), on SQLite and PostgreSQL alike, and queries comparing against a member find rows
written with the bare text by earlier versions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import col, select

from okrsync.api.metrics import CONNECTION_STATUSES, OUTBOX_STATUSES
from okrsync.domain.statuses import ConnectionStatus, DeliveryStatus, RunStatus
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.tables import ConnectionStateRow, DeliveryRow, RunRow

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def test_members_are_their_stored_text() -> None:
    assert [str(s) for s in DeliveryStatus] == ["pending", "done", "failed", "superseded"]
    assert [str(s) for s in RunStatus] == ["running", "ok", "partial"]
    stored: str = "credentials_rejected"
    assert stored == ConnectionStatus.CREDENTIALS_REJECTED
    assert OUTBOX_STATUSES == ("pending", "done", "failed", "superseded")
    assert CONNECTION_STATUSES == (
        "ok",
        "partial",
        "failing",
        "credentials_rejected",
        "paused_quota",
    )


def test_rows_hold_the_plain_text_and_queries_by_member_find_bare_text(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with session_scope(engine) as session:
            for key, status in (("a", DeliveryStatus.DONE), ("b", "done"), ("c", "pending")):
                session.add(
                    DeliveryRow(
                        mirror_key=key,
                        idempotency_key=key,
                        status=status,
                        created_at=NOW,
                        next_attempt_at=NOW,
                    )
                )
            session.add(ConnectionStateRow(name="crm", type="x", status=ConnectionStatus.FAILING))
            session.add(RunRow(id="r1", trigger="manual", started_at=NOW))
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT status FROM deliveries ORDER BY mirror_key")).all()
            health = conn.execute(text("SELECT status FROM connection_states")).scalar_one()
            run = conn.execute(text("SELECT status FROM runs")).scalar_one()
        assert [row[0] for row in stored] == ["done", "done", "pending"]
        assert (health, run) == ("failing", "running")
        with session_scope(engine) as session:
            done = session.exec(
                select(DeliveryRow.mirror_key)
                .where(DeliveryRow.status == DeliveryStatus.DONE)
                .order_by(col(DeliveryRow.mirror_key))
            ).all()
            assert done == ["a", "b"]
    finally:
        engine.dispose()
