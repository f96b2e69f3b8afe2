"""A connection's health row, on SQLite and PostgreSQL: passes set its status and rest it after
repeated failure, a mirror-only connection follows its pushes, and a skipped pass is noted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from okrsync.domain.statuses import ConnectionStatus
from okrsync.engine.health import STILL_FETCHING, ConnectionHealth
from okrsync.errors import ConnectorError, CredentialsError, QuotaExhaustedError
from okrsync.redaction import Redactor
from okrsync.sdk.models import Reading
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.tables import ConnectionStateRow

START = datetime(2026, 12, 7, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def reading(error: ConnectorError | None = None) -> Reading:
    value = None if error else Decimal(1)
    return Reading(key="q", value=value, query_text="q", fetched_at=START, error=error)


def test_passes_pushes_and_skipped_passes_set_the_health_row(database_url: str) -> None:
    engine = make_engine(database_url)
    clock = Clock()
    try:
        upgrade(engine)
        health = ConnectionHealth(
            engine,
            {"crm": "hubspot", "chat": "slack"},
            clock=clock,
            redactor=Redactor(["s3cret"]),
        )

        def row(name: str) -> ConnectionStateRow:
            with session_scope(engine) as session:
                found = session.get(ConnectionStateRow, name)
                assert found is not None
                return found

        health.record_passes({"crm": [reading(), reading(ConnectorError("boom"))]})
        assert row("crm").status == ConnectionStatus.PARTIAL
        assert row("crm").type == "hubspot"

        for failures in (1, 2, 3):
            health.record_pass("crm", [reading(ConnectorError("down, token s3cret"))])
            state = row("crm")
            assert (state.status, state.consecutive_failures) == (
                ConnectionStatus.FAILING,
                failures,
            )
        assert "s3cret" not in (state.last_error or "")
        assert state.paused_until == START + timedelta(seconds=30)
        assert set(health.paused(["crm", "chat"])) == {"crm"}
        clock.now = START + timedelta(seconds=31)
        assert health.paused(["crm"]) == {}

        health.record_pass("crm", [reading(CredentialsError("401"))])
        assert row("crm").status == ConnectionStatus.CREDENTIALS_REJECTED
        health.record_pass("crm", [reading(QuotaExhaustedError("429", resume_at=None))])
        assert row("crm").status == ConnectionStatus.PAUSED_QUOTA
        assert isinstance(health.paused(["crm"])["crm"], QuotaExhaustedError)

        health.note_still_fetching({"crm": START})
        noted = row("crm")
        assert noted.status == ConnectionStatus.PAUSED_QUOTA
        assert (noted.last_error or "").startswith(STILL_FETCHING)

        with session_scope(engine) as session:
            health.record_push(session, "chat", clock.now, error="refused")
            health.record_push(session, "github", clock.now, error="not tracked here")
        assert (row("chat").status, row("chat").consecutive_failures) == (
            ConnectionStatus.FAILING,
            1,
        )
        with session_scope(engine) as session:
            health.record_push(session, "chat", clock.now, error=None)
            assert session.get(ConnectionStateRow, "github") is None
        assert (row("chat").status, row("chat").consecutive_failures) == (ConnectionStatus.OK, 0)
    finally:
        engine.dispose()
