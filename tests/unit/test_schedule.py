"""Schedule parsing, ticks, jitter and catch-up planning, all with explicit times."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.schedule import Due, Schedule, jitter, plan_next
from okrsync.errors import ScheduleError

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)

aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("every 15m", 15 * M),
        ("every 30s", 30 * S),
        ("every 1s", S),
        ("every 1h30m", 90 * M),
        ("every 1h 30m 15s", 90 * M + 15 * S),
        ("every 30m1h", 90 * M),
        ("every 2h", 2 * H),
        ("every 1d", 24 * H),
        ("every 1d12h", 36 * H),
        ("every 1 minute", M),
        ("every 5 minutes", 5 * M),
        ("every 5minutes", 5 * M),
        ("every 2 hours", 2 * H),
        ("every 45 seconds", 45 * S),
        ("every 3 days", 72 * H),
        ("every 1 hour 30 minutes", 90 * M),
        ("every day", 24 * H),
        ("every hour", H),
        ("every minute", M),
        ("every second", S),
        ("  Every 15M  ", 15 * M),
        ("every 90m", 90 * M),
        ("every 366d", 366 * 24 * H),
    ],
)
def test_parses_intervals(text: str, interval: timedelta) -> None:
    schedule = Schedule.parse(text)
    assert schedule == Schedule(text=text, interval=interval, cron=None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "every 15x",
            "'every 15x' is not a schedule: use 'every <n>s|m|h|d' (e.g. 'every 15m') "
            "or a 5-field cron string (e.g. '*/10 * * * *')",
        ),
        ("every", "is not a schedule"),
        ("every m", "is not a schedule"),
        ("every 1.5h", "is not a schedule"),
        ("every -5m", "is not a schedule"),
        ("every 5 parsecs", "is not a schedule"),
        ("every 1ms", "is not a schedule"),
        ("every days", "is not a schedule"),
        ("every15m", "is not a schedule"),
        ("15m", "is not a schedule"),
        ("hourly", "is not a schedule"),
        ("", "is not a schedule"),
        ("every 0s", "too short: the shortest interval is 1 second"),
        ("every 0h 0m", "too short"),
        ("every 367d", "too long: the longest interval is 366 days"),
        ("every 999999999999999s", "too long"),
        ("every " + "9" * 5000 + "s", "is not a schedule"),
        ("every 1h 2h", "gives the unit 'h' twice"),
        ("every 1 minute 5m", "twice"),
    ],
)
def test_refuses_bad_intervals(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Schedule.parse(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("*/10 * * * *", "*/10 * * * *"),
        ("0 9 * * mon-fri", "0 9 * * mon-fri"),
        ("0  9 * *   1", "0 9 * * 1"),
        ("0 0 L * *", "0 0 L * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # rare, but it does fire
        ("0 0 * * thu", "0 0 * * thu"),  # 'h' inside a day name is not croniter's hash
    ],
)
def test_parses_cron(text: str, cron: str) -> None:
    schedule = Schedule.parse(text)
    assert (schedule.text, schedule.interval, schedule.cron) == (text, None, cron)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61 * * * *", "'61 * * * *' is not a valid cron string: [61 * * * *] is not acceptable"),
        ("*/0 * * * *", "is not a valid cron string: "),
        ("a b c d e", "is not a valid cron string: "),
        ("0 0 30 2 *", "'0 0 30 2 *' never fires"),
        ("* * * *", "is not a schedule"),
        ("* * * * * *", "is not a schedule"),  # croniter's seconds field is not offered
        ("@daily", "is not a schedule"),
        ("R * * * *", "random or hashed"),
        ("H/15 * * * *", "random or hashed"),
    ],
)
def test_refuses_bad_cron(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Schedule.parse(text)
    assert message in str(caught.value)


def test_a_schedule_is_an_interval_or_a_cron() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(text="x", interval=None, cron=None)
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(text="x", interval=M, cron="* * * * *")


# --- ticks -----------------------------------------------------------------------------------


def test_interval_ticks_are_anchored_to_the_previous_run() -> None:
    every_15m = Schedule.parse("every 15m")
    after = T0 + timedelta(seconds=7, microseconds=3)
    assert every_15m.next_tick(after) == after + 15 * M


def test_interval_ticks_are_added_in_utc_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")
    before_change = datetime(2024, 3, 31, 1, 30, tzinfo=paris)  # clocks jump 02:00 -> 03:00
    tick = Schedule.parse("every 1h").next_tick(before_change)
    assert tick - before_change == H
    assert tick.utcoffset() == timedelta(0)
    assert tick == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (T0, T0 + 15 * M),  # strictly after a tick
        (T0 - timedelta(microseconds=1), T0),
        (T0 + timedelta(microseconds=1), T0 + 15 * M),
        (T0 + 14 * M + 59 * S, T0 + 15 * M),
        (datetime(2024, 3, 1, 23, 59, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)),
    ],
)
def test_cron_next_tick(after: datetime, expected: datetime) -> None:
    tick = Schedule.parse("*/15 * * * *").next_tick(after)
    assert tick == expected
    assert tick.tzinfo is not None
    assert tick.utcoffset() == timedelta(0)


def test_cron_is_evaluated_in_utc_whatever_the_input_zone() -> None:
    plus_five = timezone(timedelta(hours=5))
    after = datetime(2024, 3, 1, 8, 0, tzinfo=plus_five)  # 03:00 UTC
    tick = Schedule.parse("0 9 * * *").next_tick(after)
    assert tick == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert tick.tzinfo == UTC


@pytest.mark.parametrize("text", ["every 1m", "* * * * *"])
def test_naive_datetimes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule.parse(text).next_tick(datetime(2024, 1, 1))


@given(
    after=aware_times,
    cron=st.sampled_from(["*/15 * * * *", "0 * * * *", "5 4 * * *", "0 0 1 * *", "0 9 * * 1"]),
)
def test_cron_ticks_are_the_first_match_after(after: datetime, cron: str) -> None:
    schedule = Schedule.parse(cron)
    tick = schedule.next_tick(after)
    assert tick > after
    assert (tick.second, tick.microsecond) == (0, 0)
    # No tick is skipped: asking again from just before the tick finds the same tick.
    assert schedule.next_tick(max(after, tick - timedelta(microseconds=1))) == tick
    assert schedule.next_tick(tick) > tick


# --- jitter ----------------------------------------------------------------------------------


def test_jitter_is_deterministic_and_spreads_keys() -> None:
    schedule = Schedule.parse("every 15m")
    assert jitter("metric.won", schedule) == jitter("metric.won", schedule)
    spread = {jitter(f"metric-{i}", schedule) for i in range(50)}
    assert len(spread) > 40
    assert max(spread) - min(spread) > timedelta(seconds=20)


@pytest.mark.parametrize(
    ("text", "max_jitter", "cap"),
    [
        ("every 15m", timedelta(seconds=30), timedelta(seconds=30)),
        ("every 1m", timedelta(seconds=30), timedelta(seconds=6)),
        ("every 10s", timedelta(seconds=30), timedelta(seconds=1)),
        ("every 1s", timedelta(seconds=30), timedelta(milliseconds=100)),
        ("every 1d", timedelta(seconds=5), timedelta(seconds=5)),
        ("0 * * * *", timedelta(seconds=30), timedelta(seconds=6)),
        ("0 * * * *", timedelta(seconds=2), timedelta(seconds=2)),
        ("every 1h", timedelta(0), timedelta(0)),
    ],
)
def test_jitter_stays_under_its_cap(text: str, max_jitter: timedelta, cap: timedelta) -> None:
    schedule = Schedule.parse(text)
    values = [jitter(f"k{i}", schedule, max_jitter) for i in range(300)]
    assert all(timedelta(0) <= v <= cap for v in values)
    assert max(values) >= cap * 0.9  # the whole range is used, not just its start


def test_negative_max_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        jitter("k", Schedule.parse("every 1m"), timedelta(seconds=-1))


@given(key=st.text(), seconds=st.integers(min_value=1, max_value=366 * 86400))
def test_jitter_is_within_ten_percent_of_the_interval(key: str, seconds: int) -> None:
    schedule = Schedule(text="", interval=timedelta(seconds=seconds), cron=None)
    value = jitter(key, schedule)
    assert timedelta(0) <= value <= min(timedelta(seconds=30), timedelta(seconds=seconds) / 10)
    assert value % timedelta(milliseconds=1) == timedelta(0)


# --- planning --------------------------------------------------------------------------------


def test_first_run_is_immediate() -> None:
    assert plan_next(Schedule.parse("every 1h"), None, T0, key="k") == Due(T0, 0)


def test_on_time_run_waits_for_the_jittered_tick() -> None:
    schedule = Schedule.parse("every 15m")
    offset = jitter("metric.won", schedule)
    assert offset > timedelta(0)  # this key's jitter is not zero, so the test sees it
    due = plan_next(schedule, T0 + offset, T0 + 5 * M, key="metric.won")
    assert due == Due(T0 + 15 * M + offset, 0)


def test_a_tick_whose_jitter_is_still_ahead_is_not_late() -> None:
    schedule = Schedule.parse("every 15m")
    offset = jitter("metric.won", schedule)
    now = T0 + 15 * M + offset / 2
    assert plan_next(schedule, T0 + offset, now, key="metric.won") == Due(T0 + 15 * M + offset, 0)


def test_interval_runs_do_not_drift_by_their_jitter() -> None:
    """Running late by the processing time or early never shifts the grid of later ticks."""
    schedule = Schedule.parse("every 15m")
    offset = jitter("metric.won", schedule)
    last_run = T0 + 2 * M  # an immediate first run at an arbitrary moment
    for period in range(1, 11):
        due = plan_next(schedule, last_run, last_run, key="metric.won")
        assert due == Due(T0 + period * 15 * M + offset, 0)
        last_run = due.at + 3 * S  # the run itself took three seconds


def test_keys_on_one_interval_are_spread_by_their_jitter() -> None:
    schedule = Schedule.parse("every 15m")
    dues = {plan_next(schedule, T0, T0, key=f"metric{i}").at for i in range(20)}
    assert len(dues) > 15


def test_a_run_in_the_future_is_not_late() -> None:
    schedule = Schedule.parse("every 15m")
    due = plan_next(schedule, T0 + H, T0, max_jitter=timedelta(0))
    assert due == Due(T0 + H + 15 * M, 0)


@pytest.mark.parametrize(
    ("text", "now", "missed"),
    [
        ("every 15m", T0 + 15 * M, 1),  # a tick exactly now is due now (no jitter)
        ("every 15m", T0 + 29 * M, 1),
        ("every 15m", T0 + 30 * M, 2),
        ("every 15m", T0 + 10 * H + 1 * M, 40),
        ("*/15 * * * *", T0 + 15 * M, 1),
        ("*/15 * * * *", T0 + H, 4),  # 10:15, 10:30, 10:45, 11:00
        ("*/15 * * * *", T0 + H - S, 3),
        ("0 9 * * *", T0 + 48 * H, 2),
    ],
)
def test_late_runs_happen_now_and_count_missed_ticks(text: str, now: datetime, missed: int) -> None:
    due = plan_next(Schedule.parse(text), T0, now, max_jitter=timedelta(0))
    assert due == Due(now, missed)


@pytest.mark.parametrize("text", ["every 15m", "*/15 * * * *"])
def test_missed_ticks_are_capped(text: str) -> None:
    due = plan_next(Schedule.parse(text), T0, T0 + 100 * H, catch_up_limit=10)
    assert due == Due(T0 + 100 * H, 10)


@pytest.mark.parametrize("text", ["every 1s", "* * * * *"])
def test_catching_up_after_a_year_is_bounded(text: str) -> None:
    schedule = Schedule.parse(text)
    now = T0 + timedelta(days=365)
    started = time.perf_counter()
    due = plan_next(schedule, T0, now, key="k")
    assert time.perf_counter() - started < 0.5
    assert due == Due(now, 100)


def test_plan_next_reports_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    now = datetime(2024, 3, 1, 12, 0, tzinfo=plus_two)
    due = plan_next(Schedule.parse("every 1h"), None, now)
    assert due.at == now
    assert due.at.utcoffset() == timedelta(0)


def test_plan_next_validates_its_arguments() -> None:
    schedule = Schedule.parse("every 1h")
    with pytest.raises(ValueError, match="catch_up_limit"):
        plan_next(schedule, T0, T0, catch_up_limit=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_next(schedule, None, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_next(schedule, datetime(2024, 1, 1), T0)


@given(
    last_run=aware_times,
    seconds=st.integers(min_value=1, max_value=7200),
    elapsed=st.integers(min_value=0, max_value=200_000),
    limit=st.integers(min_value=1, max_value=500),
    key=st.text(max_size=10),
)
def test_interval_plan_matches_counting_ticks_one_by_one(
    last_run: datetime, seconds: int, elapsed: int, limit: int, key: str
) -> None:
    interval = timedelta(seconds=seconds)
    schedule = Schedule(text="", interval=interval, cron=None)
    now = last_run + timedelta(seconds=elapsed)
    due = plan_next(schedule, last_run, now, key=key, catch_up_limit=limit)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    offset = jitter(key, schedule)
    tick = epoch + offset + ((last_run - epoch - offset) // interval + 1) * interval
    assert tick > last_run
    assert tick - interval <= last_run  # the first grid tick after the last run
    if tick > now:
        assert due == Due(tick, 0)
    else:
        count = 0
        moment = tick
        while moment <= now and count < limit:
            count += 1
            moment += interval
        assert due == Due(now, count)
        assert due.missed >= 1
    assert due.at >= now


@given(last_run=aware_times, minutes=st.integers(min_value=0, max_value=600), key=st.text())
def test_cron_plan_is_never_in_the_past_and_counts_within_limit(
    last_run: datetime, minutes: int, key: str
) -> None:
    schedule = Schedule.parse("*/7 * * * *")
    now = last_run + timedelta(minutes=minutes)
    due = plan_next(schedule, last_run, now, key=key, catch_up_limit=20)
    assert due.at >= now
    assert 0 <= due.missed <= 20
    assert (due.missed == 0) == (due.at > now)
