"""Elapsed time, status thresholds and roll-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.progress import KRKind
from okrsync.domain.status import (
    AT_RISK_GAP,
    ON_TRACK_GAP,
    Weighted,
    elapsed_fraction,
    objective_status,
    rollup,
    status_for,
)
from okrsync.sdk.models import Status

D = Decimal
Q1_START, Q1_END = date(2024, 1, 1), date(2024, 3, 31)  # 91 days, leap year


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2023, 12, 31, 23, 59), D(0)),
        (utc(2024, 1, 1), D(0)),
        (utc(2024, 2, 15), D(45) / D(91)),
        (utc(2024, 3, 31, 12), D("90.5") / D(91)),  # the last day counts in full
        (utc(2024, 4, 1), D(1)),
        (utc(2025, 1, 1), D(1)),
    ],
)
def test_elapsed_fraction_spans_whole_utc_days(at: datetime, expected: Decimal) -> None:
    assert elapsed_fraction(Q1_START, Q1_END, at) == expected


def test_elapsed_fraction_of_a_one_day_cycle_at_noon_is_exactly_half() -> None:
    day = date(2024, 6, 1)
    assert elapsed_fraction(day, day, utc(2024, 6, 1, 12)) == D("0.5")


def test_elapsed_fraction_counts_microseconds() -> None:
    day = date(2024, 6, 1)
    at = utc(2024, 6, 1) + timedelta(microseconds=1)
    assert elapsed_fraction(day, day, at) == D(1) / D(86_400_000_000)


def test_elapsed_fraction_compares_instants_in_utc() -> None:
    # 01:00 at UTC+2 is 23:00 UTC the day before the cycle starts.
    plus_two = timezone(timedelta(hours=2))
    assert elapsed_fraction(Q1_START, Q1_END, datetime(2024, 1, 1, 1, tzinfo=plus_two)) == 0
    # 12:00 at UTC-12 is midnight UTC the day after the cycle ends.
    minus_twelve = timezone(timedelta(hours=-12))
    assert elapsed_fraction(Q1_START, Q1_END, datetime(2024, 3, 31, 12, tzinfo=minus_twelve)) == 1
    half = datetime(2024, 6, 1, 14, tzinfo=plus_two)
    assert elapsed_fraction(date(2024, 6, 1), date(2024, 6, 1), half) == D("0.5")


def test_elapsed_fraction_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        elapsed_fraction(Q1_START, Q1_END, datetime(2024, 2, 1))


def test_elapsed_fraction_refuses_a_cycle_ending_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        elapsed_fraction(Q1_END, Q1_START, utc(2024, 2, 1))


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    days=st.integers(min_value=0, max_value=400),
    a=st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2102, 1, 1)),
    b=st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2102, 1, 1)),
)
def test_elapsed_fraction_is_bounded_and_monotonic(
    start: date, days: int, a: datetime, b: datetime
) -> None:
    end = start + timedelta(days=days)
    early, late = sorted((a.replace(tzinfo=UTC), b.replace(tzinfo=UTC)))
    first, second = elapsed_fraction(start, end, early), elapsed_fraction(start, end, late)
    assert 0 <= first <= second <= 1


@pytest.mark.parametrize("kind", [KRKind.INCREASE, KRKind.DECREASE])
@pytest.mark.parametrize(
    ("progress", "elapsed", "expected"),
    [
        ("0.5", "0.5", Status.ON_TRACK),
        ("0.9", "0.2", Status.ON_TRACK),  # ahead of pace
        ("1.5", "1", Status.ON_TRACK),
        ("0.4", "0.5", Status.ON_TRACK),  # gap exactly ON_TRACK_GAP
        ("0.3999", "0.5", Status.AT_RISK),
        ("0.25", "0.5", Status.AT_RISK),  # gap exactly AT_RISK_GAP
        ("0.2499", "0.5", Status.OFF_TRACK),
        ("-0.2", "0", Status.AT_RISK),  # moved the wrong way
        ("-0.3", "0", Status.OFF_TRACK),
        ("0", "0", Status.ON_TRACK),
        ("0", "0.1", Status.ON_TRACK),
        ("0", "0.11", Status.AT_RISK),
        ("0.7", "1", Status.OFF_TRACK),
    ],
)
def test_pace_status(kind: KRKind, progress: str, elapsed: str, expected: Status) -> None:
    assert status_for(kind, D(progress), D(elapsed)) == expected


def test_thresholds_are_the_documented_ones() -> None:
    assert D("0.10") == ON_TRACK_GAP
    assert D("0.25") == AT_RISK_GAP


@pytest.mark.parametrize("kind", [KRKind.STAY_ABOVE, KRKind.STAY_BELOW, KRKind.STAY_BETWEEN])
@pytest.mark.parametrize("elapsed", ["0", "0.6", "1"])
def test_stay_kinds_are_held_or_not(kind: KRKind, elapsed: str) -> None:
    assert status_for(kind, D(1), D(elapsed)) == Status.ON_TRACK
    assert status_for(kind, D(0), D(elapsed)) == Status.OFF_TRACK


@pytest.mark.parametrize(
    ("progress", "elapsed", "expected"),
    [
        ("1", "0", Status.ON_TRACK),
        ("1", "1", Status.ON_TRACK),
        ("0", "0", Status.ON_TRACK),
        ("0", "0.4999", Status.ON_TRACK),
        ("0", "0.5", Status.AT_RISK),
        ("0", "0.9999", Status.AT_RISK),
        ("0", "1", Status.OFF_TRACK),
    ],
)
def test_milestone_status(progress: str, elapsed: str, expected: Status) -> None:
    assert status_for(KRKind.MILESTONE, D(progress), D(elapsed)) == expected


@pytest.mark.parametrize("kind", list(KRKind))
def test_missing_progress_is_no_data(kind: KRKind) -> None:
    assert status_for(kind, None, D("0.5")) == Status.NO_DATA


def w(progress: str | None, weight: str = "1") -> Weighted:
    return Weighted(None if progress is None else D(progress), D(weight))


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([w("0.5")], D("0.5")),
        ([w("0.2"), w("0.6")], D("0.4")),
        ([w("1", "3"), w("0", "1")], D("0.75")),
        ([w("3"), w("0")], D("0.5")),  # 300 % does not hide 0 %
        ([w("-1"), w("1")], D("0.5")),  # nor does a negative drag below 0
        ([w(None), w("1")], D("0.5")),  # missing data counts as 0
        ([w("0.5", "0"), w("1", "1")], D(1)),  # zero weight: no influence
        ([w("1"), w("1"), w("0")], D(2) / D(3)),
    ],
)
def test_rollup_is_a_weighted_mean_of_clamped_progress(
    items: list[Weighted], expected: Decimal
) -> None:
    assert rollup(items) == expected


@pytest.mark.parametrize(
    "items",
    [[], [w(None)], [w(None), w(None, "3")], [w("0.5", "0")], [w("1", "0"), w(None, "0")]],
)
def test_rollup_is_unknown_without_data_or_weight(items: list[Weighted]) -> None:
    assert rollup(items) is None


@pytest.mark.parametrize("weight", ["-1", "NaN", "Infinity"])
def test_rollup_refuses_bad_weights(weight: str) -> None:
    with pytest.raises(ValueError, match="weights"):
        rollup([w("0.5"), w("0.5", weight)])


progress_or_none = st.none() | st.decimals(
    min_value=-10, max_value=10, allow_nan=False, allow_infinity=False, places=6
)
weights = st.decimals(min_value=0, max_value=100, places=3)


@given(st.lists(st.builds(Weighted, progress_or_none, weights), max_size=8))
def test_rollup_stays_within_the_unit_interval(items: list[Weighted]) -> None:
    result = rollup(items)
    if result is not None:
        assert 0 <= result <= 1
        clamped = [min(max(i.progress or D(0), D(0)), D(1)) for i in items if i.weight > 0]
        assert min(clamped) <= result <= max(clamped)


@given(
    progress=st.none() | st.decimals(min_value=-2, max_value=2, places=4),
    elapsed=st.decimals(min_value=0, max_value=1, places=4),
)
def test_objective_status_follows_the_increase_rule(
    progress: Decimal | None, elapsed: Decimal
) -> None:
    assert objective_status(progress, elapsed) == status_for(KRKind.INCREASE, progress, elapsed)
