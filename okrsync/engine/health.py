"""Each connection's health row: what its last pass (or, for a mirror-only connection, its last
push) says, whether it rests, and why its values stand still.

A connection fetched from follows its passes: ok, partial (some queries failed), or, when every
query of a pass failed, failing / credentials_rejected / paused_quota, rested after a few such
passes in a row (see :mod:`okrsync.domain.backoff`). A connection that is only ever a mirror
follows its deliveries. Replicas on one store may race to create a row on a fresh store: it is
added ``ON CONFLICT DO NOTHING`` and then locked, so they take turns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from okrsync.domain.backoff import failure_pause, quota_resume
from okrsync.domain.statuses import ConnectionStatus
from okrsync.errors import ConnectorError, CredentialsError, QuotaExhaustedError
from okrsync.redaction import Redactor
from okrsync.sdk.models import Reading
from okrsync.store.db import session_scope
from okrsync.store.tables import ConnectionStateRow
from okrsync.store.upsert import add_missing

log = structlog.get_logger()

STILL_FETCHING = "still fetching since "
BEFORE = "; last error: "


def still_fetching_note(since: datetime, last_error: str | None) -> str:
    """A connection's ``last_error`` while a pass of it is skipped: since when its fetch runs,
    and the error it had before (not an earlier note). Pure."""
    if last_error is not None and last_error.startswith(STILL_FETCHING):
        last_error = last_error.partition(BEFORE)[2] or None
    note = f"{STILL_FETCHING}{since:%Y-%m-%d %H:%M:%S} UTC (a pass that fell due was skipped)"
    return note + (f"{BEFORE}{last_error}" if last_error else "")


class ConnectionHealth:
    """The health rows of the connections named in ``connection_types`` (name -> type)."""

    def __init__(
        self,
        engine: Engine,
        connection_types: Mapping[str, str],
        *,
        clock: Callable[[], datetime],
        redactor: Redactor,
    ) -> None:
        self.engine = engine
        self.connection_types = connection_types
        self.clock = clock
        self.redactor = redactor

    def row(self, session: Session, name: str) -> ConnectionStateRow:
        """The connection's health row, created if missing (replicas may race to) and locked."""
        add_missing(session, [ConnectionStateRow(name=name, type=self.connection_types[name])])
        state = session.get(ConnectionStateRow, name, with_for_update=True)
        assert state is not None  # added above, or by the replica that got there first
        return state

    def record_passes(self, answered: Mapping[str, list[Reading]]) -> None:
        """Each connection's pass, in name order (the order rows are locked in)."""
        for name, readings in sorted(answered.items()):
            self.record_pass(name, readings)

    def record_pass(self, name: str, readings: list[Reading]) -> None:
        """ok / partial (some queries failed) / failing / credentials_rejected / paused_quota.

        Only a pass in which every query failed counts against the connection; after a few in a
        row it is rested (see :mod:`okrsync.domain.backoff`).
        """
        now = self.clock()
        errors = [r.error for r in readings if r.error is not None]
        with session_scope(self.engine) as session:
            state = self.row(session, name)
            if len(errors) < len(readings):
                state.status = ConnectionStatus.PARTIAL if errors else ConnectionStatus.OK
                state.consecutive_failures = 0
                state.last_ok_at = now
                state.paused_until = None
            if errors:
                state.last_error_at = now
                state.last_error = self.redactor.redact(str(errors[0]))
            if errors and len(errors) == len(readings):
                first = errors[0]
                state.consecutive_failures += 1
                if isinstance(first, QuotaExhaustedError):
                    state.status = ConnectionStatus.PAUSED_QUOTA
                    resume = (
                        datetime.fromtimestamp(first.resume_at, UTC) if first.resume_at else None
                    )
                    state.paused_until = quota_resume(now, resume)
                else:
                    credentials = isinstance(first, CredentialsError)
                    state.status = (
                        ConnectionStatus.CREDENTIALS_REJECTED
                        if credentials
                        else ConnectionStatus.FAILING
                    )
                    pause = failure_pause(state.consecutive_failures)
                    state.paused_until = now + pause if pause else None
                log.warning(
                    "connection_failed",
                    connection=name,
                    status=state.status,
                    failures=state.consecutive_failures,
                    paused_until=state.paused_until.isoformat() if state.paused_until else None,
                    error=state.last_error,
                )
            session.add(state)

    def record_push(
        self, session: Session, connection: str, now: datetime, error: str | None
    ) -> None:
        """A mirror-only connection's health follows its deliveries: ok after a push, failing
        (``error`` already redacted) after a failed one. In the delivery's own transaction. A
        connection not named here (one fetched from) is left to its passes."""
        if connection not in self.connection_types:
            return
        state = self.row(session, connection)
        if error is None:
            state.status = ConnectionStatus.OK
            state.consecutive_failures = 0
            state.last_ok_at = now
        else:
            state.status = ConnectionStatus.FAILING
            state.consecutive_failures += 1
            state.last_error = error
            state.last_error_at = now
        session.add(state)

    def note_still_fetching(self, since: Mapping[str, datetime]) -> None:
        """Say on each connection's health that a pass of it was skipped because its previous
        fetch (running since ``since[name]``) has not ended.

        The status stays what it was: the fetch may still succeed, and its end (an answer, or
        its deadline) sets the status. ``last_error`` tells meanwhile why the values stand still,
        and keeps the error before it (a connection failing by its deadline pass after pass
        shows both: it is fetching again, and how the last fetch ended).
        """
        now = self.clock()
        with session_scope(self.engine) as session:
            for name, started in sorted(since.items()):
                state = self.row(session, name)
                state.last_error = still_fetching_note(started, state.last_error)
                state.last_error_at = now
                session.add(state)

    def paused(self, names: Collection[str]) -> dict[str, ConnectorError]:
        """Connections resting after repeated failures or for quota, with the reason."""
        now = self.clock()
        paused: dict[str, ConnectorError] = {}
        with session_scope(self.engine) as session:
            for name in names:
                state = session.get(ConnectionStateRow, name)
                if state is None or state.paused_until is None or state.paused_until <= now:
                    continue
                error_type = (
                    QuotaExhaustedError
                    if state.status == ConnectionStatus.PAUSED_QUOTA
                    else ConnectorError
                )
                paused[name] = error_type(
                    f"paused until {state.paused_until:%Y-%m-%d %H:%M:%S} UTC after "
                    f"{state.consecutive_failures} failed passes; last error: {state.last_error}",
                    connection=name,
                )
        return paused
