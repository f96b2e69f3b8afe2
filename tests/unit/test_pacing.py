from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.pacing import DeliveryPolicy, QuietHours, earliest_push, worth_pushing

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_no_policy_pushes_now() -> None:
    assert earliest_push(DeliveryPolicy(), NOW, NOW - timedelta(seconds=1)) == NOW


def test_min_interval_defers_from_the_last_push() -> None:
    policy = DeliveryPolicy(min_interval=timedelta(minutes=10))
    assert earliest_push(policy, NOW, NOW - timedelta(minutes=3)) == NOW + timedelta(minutes=7)
    assert earliest_push(policy, NOW, NOW - timedelta(minutes=30)) == NOW
    assert earliest_push(policy, NOW, None) == NOW


def test_quiet_hours_wrap_midnight_in_their_time_zone() -> None:
    quiet = QuietHours.parse("22:00", "07:00", "Europe/Berlin")
    late = datetime(2026, 11, 27, 23, 30, tzinfo=BERLIN)
    early = datetime(2026, 11, 28, 6, 59, tzinfo=BERLIN)
    day = datetime(2026, 11, 28, 7, 0, tzinfo=BERLIN)
    morning = datetime(2026, 11, 28, 7, 0, tzinfo=BERLIN)
    assert quiet.resume_at(late) == morning
    assert quiet.resume_at(early) == morning
    assert quiet.resume_at(day) == day
    # in UTC terms: 22:30 UTC is 23:30 in Berlin (winter), quiet until 06:00 UTC
    policy = DeliveryPolicy(quiet_hours=quiet)
    at = earliest_push(policy, datetime(2026, 11, 27, 22, 30, tzinfo=UTC), None)
    assert at == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours.parse("12:00", "13:30")
    assert lunch.resume_at(NOW) == NOW.replace(hour=13, minute=30)
    assert lunch.resume_at(NOW - timedelta(minutes=1)) == NOW - timedelta(minutes=1)


def test_interval_and_quiet_hours_combine() -> None:
    policy = DeliveryPolicy(
        min_interval=timedelta(hours=1), quiet_hours=QuietHours.parse("12:30", "14:00")
    )
    assert earliest_push(policy, NOW, NOW - timedelta(minutes=10)) == NOW.replace(hour=14)


@pytest.mark.parametrize(
    ("start", "end", "zone", "message"),
    [
        ("25:00", "07:00", "UTC", "start must look like 22:00"),
        ("22:00", "7", "UTC", "end must look like 22:00"),
        ("22:00", "07:00", "Mars/Olympus", "unknown time zone"),
        ("07:00", "07:00", "UTC", "the same time"),
    ],
)
def test_bad_quiet_hours_are_explained(start: str, end: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuietHours.parse(start, end, zone)


def test_min_change_skips_small_moves_but_never_a_status_change() -> None:
    policy = DeliveryPolicy(min_change=Decimal("0.05"))
    before = (Decimal("0.40"), "on_track")
    assert not worth_pushing(policy, before, (Decimal("0.44"), "on_track"))
    assert worth_pushing(policy, before, (Decimal("0.45"), "on_track"))
    assert worth_pushing(policy, before, (Decimal("0.36"), "at_risk"))
    assert worth_pushing(policy, None, (Decimal("0.41"), "on_track"))
    assert worth_pushing(DeliveryPolicy(), before, before)


@given(
    minutes=st.integers(min_value=0, max_value=7 * 24 * 60),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    length=st.integers(min_value=1, max_value=23 * 60),
)
def test_resume_is_never_earlier_and_never_inside_the_window(
    minutes: int, start: time, length: int
) -> None:
    end_dt = datetime.combine(NOW.date(), start) + timedelta(minutes=length)
    quiet = QuietHours(start, end_dt.time(), "Europe/Berlin")
    if quiet.start == quiet.end:
        return
    at = NOW + timedelta(minutes=minutes)
    resumed = quiet.resume_at(at)
    assert resumed >= at
    assert quiet.resume_at(resumed) == resumed
