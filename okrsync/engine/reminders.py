"""Check-in reminders: once per tick of ``check_ins.every``, across replicas and restarts.

Key results with ``check_ins: {every, remind: {connection, channel}}`` are grouped by
(connection, channel, owner of their objective, schedule): one group, one message. At each tick
of the schedule (:mod:`okrsync.domain.reminder_ticks`) the group's message lists the key results
that want a check-in:

* a manual key result (no metric, no value) with no check-in since the previous tick;
* a key result fed by a metric whose value is stale (its ``stale_after`` has passed since a
  source last confirmed it).

Once per tick: the first replica to insert the ``reminders_sent`` row (reminder, tick) sends the
message; the others (and this one after a restart) find the row and send nothing. The row is
inserted before sending, so a crash between the two loses that tick's reminder rather than
sending it twice; a send the vendor clearly refused (bad token, unknown channel, rate limit)
deletes the row, so a later pass within the tick tries again, while one without a clear answer
(a 5xx, a timeout: the message may have been posted) keeps it: at most once. A group with
nothing to remind of claims its tick too (``key_results`` 0), so a key result going stale later
in the week is named at the next tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from okrsync.config import Config
from okrsync.config.models import KeyResultDef
from okrsync.domain.reminder_ticks import TickWindow, sendable, window
from okrsync.domain.schedule import Schedule
from okrsync.errors import ConnectorError, PluginError, RateLimitedError, RetriableError
from okrsync.sdk.chat import ChatCheckIns, Reminder, ReminderLine
from okrsync.store.db import session_scope
from okrsync.store.offload import in_thread
from okrsync.store.tables import KeyResultRow, MeasurementRow, ReminderRow
from okrsync.store.views import stale_deadline

log = structlog.get_logger()

SEND_DEADLINE = 30.0
"""Seconds one reminder may take to send (the connection's own retries included), so a slow
chat vendor holds up the daemon's pass by at most this much per reminder."""


@dataclass(frozen=True)
class Group:
    connection: str
    channel: str
    owner: str | None
    schedule: Schedule
    key_results: tuple[KeyResultDef, ...]

    @property
    def key(self) -> str:
        """The group's name in ``reminders_sent``: the SHA-256 of what makes it one message."""
        parts = [self.connection, self.channel, self.owner, self.schedule.text]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def reminder_groups(config: Config) -> list[Group]:
    """Every reminder the config asks for (see the module's text)."""
    found: dict[tuple[str, str, str | None, str], list[KeyResultDef]] = {}
    schedules: dict[str, Schedule] = {}
    for objective in config.objectives:
        for kr in objective.key_results:
            policy = kr.check_ins
            if policy.every is None or policy.remind is None:
                continue
            schedules[policy.every.text] = policy.every
            where = (policy.remind.connection, policy.remind.channel)
            found.setdefault((*where, objective.owner, policy.every.text), []).append(kr)
    return [
        Group(connection, channel, owner, schedules[every], tuple(krs))
        for (connection, channel, owner, every), krs in found.items()
    ]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def due_lines(engine: Engine, group: Group, ticks: TickWindow, now: datetime) -> list[ReminderLine]:
    """The group's key results that want a check-in at ``ticks.current``."""
    ids = [kr.id for kr in group.key_results]
    with session_scope(engine) as session:
        rows = {
            row.id: row
            for row in session.exec(select(KeyResultRow).where(col(KeyResultRow.id).in_(ids)))
        }
        latest = dict(
            session.exec(
                select(MeasurementRow.key_result_id, func.max(MeasurementRow.observed_at))
                .where(col(MeasurementRow.key_result_id).in_(ids))
                .where(MeasurementRow.origin == "manual")
                .group_by(col(MeasurementRow.key_result_id))
            ).all()
        )
    lines = []
    for kr in group.key_results:
        row = rows.get(kr.id)
        if kr.manual:
            checked = latest.get(kr.id)
            if checked is None or checked < ticks.previous:
                reason = "no check-in yet" if checked is None else f"last check-in {_when(checked)}"
                lines.append(ReminderLine(kr.id, kr.title, reason))
            continue
        seconds = None if row is None else row.stale_after_seconds
        if row is None or row.checked_at is None or seconds is None:
            continue
        deadline = stale_deadline(row.checked_at, seconds)
        if deadline <= now:
            lines.append(ReminderLine(kr.id, kr.title, f"stale since {_when(deadline)}"))
    return lines


def claim(engine: Engine, group: Group, tick: datetime, owner: str, now: datetime) -> bool:
    """Insert the (reminder, tick) row: True for the one replica that did."""
    try:
        with session_scope(engine) as session:
            session.add(
                ReminderRow(reminder=group.key, tick=tick, claimed_by=owner, claimed_at=now)
            )
    except IntegrityError:
        return False
    return True


def settle(engine: Engine, group: Group, tick: datetime, listed: int | None) -> None:
    """Record how many key results the tick's message listed; ``None``: it was not sent, so the
    claim is given back for a later pass to try again."""
    with session_scope(engine) as session:
        if listed is None:
            mine = (col(ReminderRow.reminder) == group.key) & (col(ReminderRow.tick) == tick)
            session.exec(delete(ReminderRow).where(mine))
            return
        row = session.get(ReminderRow, (group.key, tick))
        if row is not None:
            row.key_results = listed
            session.add(row)


class Reminders:
    """Sends the reminders due at each pass of the daemon (:meth:`send_due`)."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        sink_for: Callable[[str], Any],
        *,
        owner: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.groups = reminder_groups(config)
        self.sink_for = sink_for
        self.owner = owner
        self.clock = clock
        self.sent = 0  # messages this process sent
        # the tick each group was last settled for here (sent, or claimed by another replica):
        # later passes within that tick skip it without asking the store
        self._settled: dict[str, datetime] = {}

    async def send_due(self) -> datetime | None:
        """Send every reminder whose tick has come and that no replica has claimed; return when
        the next tick comes (None without reminders)."""
        now = self.clock()
        wake: datetime | None = None
        for group in self.groups:
            ticks = window(group.schedule, now)
            wake = ticks.next if wake is None else min(wake, ticks.next)
            if sendable(ticks, now) and self._settled.get(group.key) != ticks.current:
                await self._send(group, ticks, now)
        return wake

    async def _send(self, group: Group, ticks: TickWindow, now: datetime) -> None:
        if not await in_thread(claim, self.engine, group, ticks.current, self.owner, now):
            self._settled[group.key] = ticks.current  # another replica (or our last run) has it
            return
        listed: int | None = 0
        try:
            lines = await in_thread(due_lines, self.engine, group, ticks, now)
            if lines:
                chat = self.sink_for(group.connection)
                if not isinstance(chat, ChatCheckIns):
                    log.warning("reminder_connection_cannot_chat", connection=group.connection)
                    return
                reminder = Reminder(group.channel, group.owner, tuple(lines))
                await asyncio.wait_for(chat.send_reminder(reminder), SEND_DEADLINE)
                self.sent += 1
                log.info(
                    "check_in_reminder_sent",
                    connection=group.connection,
                    channel=group.channel,
                    key_results=len(lines),
                )
            listed = len(lines)
        except (TimeoutError, RetriableError) as exc:
            if isinstance(exc, RateLimitedError):  # a clear refusal: nothing was posted
                listed = None
            # else no clear answer: the message may be in the channel, so not sent again
            log.warning(
                "check_in_reminder_failed",
                connection=group.connection,
                error=type(exc).__name__,
                retried=listed is None,
            )
        except (ConnectorError, PluginError) as exc:  # refused: nothing was posted
            listed = None
            log.warning("check_in_reminder_failed", connection=group.connection, error=str(exc))
        finally:
            await in_thread(settle, self.engine, group, ticks.current, listed)
            if listed is not None:
                self._settled[group.key] = ticks.current
