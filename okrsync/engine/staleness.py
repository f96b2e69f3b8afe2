"""Telling mirrors when a key result's value goes stale, and when it is confirmed again.

A mirror shows the last value a source confirmed; when the source stops answering (a revoked
token, a paused connection, a vendor outage) the number on the mirror silently ages. Once a key
result's ``checked_at`` is older than its ``stale_after``, every mirror that announces staleness
(the default) gets one delivery saying so; the recorder queues the matching "fresh again" one
when a source next confirms the value (see :func:`okrsync.engine.recorder.record`).

``key_results.stale_announced_for`` holds the ``checked_at`` whose staleness was announced, so an
episode is announced once, whichever replica sees it first and however often the loop passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlmodel import col, select

from okrsync.config import Config, CycleDef, ObjectiveDef
from okrsync.engine.outbox import staleness_changed
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow
from okrsync.store.views import stale_deadline

log = structlog.get_logger()

CHUNK = 500


@dataclass(frozen=True)
class Watched:
    objective: ObjectiveDef
    cycle: CycleDef


def watched_key_results(config: Config) -> dict[str, Watched]:
    """Key results with a ``stale_after`` and at least one mirror that announces staleness."""
    found: dict[str, Watched] = {}
    for objective in config.objectives:
        digest = any(m.policy.announce_stale for m in objective.mirrors)
        for kr in objective.key_results:
            own = any(m.policy.announce_stale for m in kr.mirrors)
            if kr.stale_after is not None and (own or digest):
                found[kr.id] = Watched(objective, config.cycles[objective.cycle])
    return found


class StaleWatch:
    def __init__(self, engine: Engine, config: Config, *, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.watched = watched_key_results(config)
        self.clock = clock

    def announce_due(self) -> tuple[int, datetime | None]:
        """Queue announcements for key results that went stale; return how many, and when the
        next watched value goes stale (None when none is pending)."""
        if not self.watched:
            return 0, None
        now = self.clock()
        due: list[str] = []
        wake: datetime | None = None
        ids = sorted(self.watched)
        with session_scope(self.engine) as session:
            for start in range(0, len(ids), CHUNK):
                statement = select(
                    KeyResultRow.id,
                    KeyResultRow.checked_at,
                    KeyResultRow.stale_after_seconds,
                    KeyResultRow.stale_announced_for,
                ).where(
                    col(KeyResultRow.id).in_(ids[start : start + CHUNK]),
                    col(KeyResultRow.archived_at).is_(None),
                    col(KeyResultRow.value).is_not(None),
                    col(KeyResultRow.checked_at).is_not(None),
                    col(KeyResultRow.stale_after_seconds).is_not(None),
                )
                for kr_id, checked_at, seconds, announced in session.exec(statement):
                    if checked_at is None or seconds is None or announced == checked_at:
                        continue  # (None only for the type checker) or announced already
                    deadline = stale_deadline(checked_at, seconds)
                    if now > deadline:
                        due.append(kr_id)
                    else:
                        wake = deadline if wake is None else min(wake, deadline)
        queued = sum(self._announce(kr_id, now) for kr_id in due)
        if queued:
            log.info("stale_values_announced", key_results=len(due), deliveries=queued)
        if wake is not None:
            wake += timedelta(milliseconds=1)  # stale means strictly past the deadline
        return queued, wake

    def _announce(self, kr_id: str, now: datetime) -> int:
        watched = self.watched[kr_id]
        with session_scope(self.engine) as session:
            row = session.exec(
                select(KeyResultRow).where(KeyResultRow.id == kr_id).with_for_update()
            ).one_or_none()
            if row is None or row.checked_at is None or row.stale_after_seconds is None:
                return 0
            if row.stale_announced_for == row.checked_at:
                return 0  # another replica announced it meanwhile
            if now <= stale_deadline(row.checked_at, row.stale_after_seconds):
                return 0  # confirmed meanwhile
            episode = row.checked_at
            row.stale_announced_for = episode
            session.add(row)
            return staleness_changed(
                session, watched.objective, watched.cycle, row, episode, now, stale=True
            )
