"""Which tick of a check-in schedule a reminder belongs to: pure arithmetic on ``now``.

A reminder is sent once per tick of its key results' ``check_ins.every``. The *current* tick is
the latest one at or before ``now``; the *previous* one is the tick before it, and a key result
that has no check-in since the previous tick is reminded of at the current one. Every replica
computes the same ticks from the same ``now``: a cron schedule's ticks are its own (UTC); an
interval's are anchored to :data:`ANCHOR` (``every 7d`` ticks on Thursdays 00:00 UTC, the
weekday of 1970-01-01), not to a process's start, so replicas and restarts agree.

A tick older than :data:`LATE_LIMIT` is not sent late: a daemon that was down at Monday 09:00 and
comes back on Wednesday does not remind people of Monday's check-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from okrsync.domain.schedule import Schedule

ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
LATE_LIMIT = timedelta(hours=12)


@dataclass(frozen=True)
class TickWindow:
    previous: datetime  # the tick before the current one: check-ins since then count
    current: datetime  # the latest tick at or before now: the reminder's tick
    next: datetime  # when the following reminder is due


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("reminder ticks need an aware datetime")
    return moment.astimezone(UTC)


def _prev_cron(cron: str, before: datetime) -> datetime:
    """The latest tick of ``cron`` strictly before ``before``."""
    tick = croniter(cron, before).get_prev(datetime)
    assert isinstance(tick, datetime)
    return tick.astimezone(UTC)


def window(schedule: Schedule, now: datetime) -> TickWindow:
    """The ticks around ``now`` (see the module's text)."""
    at = _utc(now)
    if schedule.interval is not None:
        step = schedule.interval
        current = ANCHOR + step * ((at - ANCHOR) // step)
        return TickWindow(current - step, current, current + step)
    assert schedule.cron is not None
    after = schedule.next_tick(at)  # strictly after now
    current = _prev_cron(schedule.cron, after)  # the latest tick before it: at or before now
    return TickWindow(_prev_cron(schedule.cron, current), current, after)


def sendable(tick: TickWindow, now: datetime) -> bool:
    """Whether the current tick's reminder may still be sent at ``now`` (not too late)."""
    return _utc(now) - tick.current <= LATE_LIMIT
