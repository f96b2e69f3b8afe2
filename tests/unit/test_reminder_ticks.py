"""Reminder ticks: the same tick for every replica, from ``now`` alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.reminder_ticks import LATE_LIMIT, sendable, window
from okrsync.domain.schedule import Schedule

MONDAYS_9 = Schedule.parse("0 9 * * 1")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)  # 2026-12-07 is a Monday


def test_cron_tick_is_the_latest_at_or_before_now() -> None:
    ticks = window(MONDAYS_9, at(9, 15))  # Wednesday
    last_week = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert (ticks.previous, ticks.current, ticks.next) == (last_week, at(7, 9), at(14, 9))
    exactly = window(MONDAYS_9, at(7, 9))
    assert exactly.current == at(7, 9) and exactly.next == at(14, 9)
    before = window(MONDAYS_9, at(7, 8, 59))
    assert before.current == datetime(2026, 11, 30, 9, tzinfo=UTC)


def test_interval_ticks_are_anchored_not_relative_to_a_start() -> None:
    every_day = Schedule.parse("every 1d")
    ticks = window(every_day, at(7, 15, 30))
    assert (ticks.previous, ticks.current, ticks.next) == (at(6, 0), at(7, 0), at(8, 0))


def test_a_tick_is_not_sent_late() -> None:
    ticks = window(MONDAYS_9, at(7, 9))
    assert sendable(ticks, at(7, 9) + LATE_LIMIT)
    assert not sendable(ticks, at(7, 9) + LATE_LIMIT + timedelta(seconds=1))


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["0 9 * * 1", "*/15 * * * *", "every 7d", "every 90m", "0 0 1 * *"]),
)
def test_window_brackets_now(now: datetime, text: str) -> None:
    schedule = Schedule.parse(text)
    ticks = window(schedule, now)
    assert ticks.previous < ticks.current <= now < ticks.next
    assert schedule.next_tick(ticks.previous) == ticks.current
    assert schedule.next_tick(ticks.current) == ticks.next
    assert window(schedule, ticks.current) == ticks  # the tick itself opens its window
