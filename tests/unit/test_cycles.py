"""Generated cycle series and the cycle lifecycle (okrsync.domain.cycles): pure, clock given."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okrsync.domain.cycles import (
    CycleState,
    Every,
    Series,
    Span,
    add_months,
    closes_at,
    current,
    expand,
    series_problems,
    state_at,
)

QUARTERS = Series(Every.QUARTER, date(2026, 1, 1), "{year}-Q{quarter}")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_quarters_across_a_year_boundary() -> None:
    spans = expand(QUARTERS, date(2026, 12, 31))
    assert [s.id for s in spans] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2027-Q1"]
    assert spans[3] == Span("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
    assert spans[4] == Span("2027-Q1", date(2027, 1, 1), date(2027, 3, 31))
    # a day later the next quarter is current and one more is listed ahead
    assert [s.id for s in expand(QUARTERS, date(2027, 1, 1))][-2:] == ["2027-Q1", "2027-Q2"]


def test_months_end_on_their_last_day_including_leap_february() -> None:
    months = Series(Every.MONTH, date(2027, 11, 1), "{year}-{month}")
    spans = expand(months, date(2028, 2, 10), ahead=0)
    assert [(s.id, s.end) for s in spans] == [
        ("2027-11", date(2027, 11, 30)),
        ("2027-12", date(2027, 12, 31)),
        ("2028-01", date(2028, 1, 31)),
        ("2028-02", date(2028, 2, 29)),  # 2028 is a leap year
    ]
    assert expand(Series(Every.MONTH, date(2027, 2, 1), "{year}-{month}"), date(2027, 2, 1))[
        0
    ].end == date(2027, 2, 28)


def test_halves() -> None:
    halves = Series(Every.HALF, date(2026, 7, 1), "{year}-H{half}")
    assert expand(halves, date(2026, 8, 1)) == [
        Span("2026-H2", date(2026, 7, 1), date(2026, 12, 31)),
        Span("2027-H1", date(2027, 1, 1), date(2027, 6, 30)),
    ]


def test_before_the_series_starts_its_first_cycle_is_upcoming_and_current() -> None:
    spans = expand(QUARTERS, date(2025, 11, 5))
    assert [s.id for s in spans] == ["2026-Q1"]
    assert current(spans, date(2025, 11, 5)) == spans[0]


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (Series(Every.QUARTER, date(2026, 2, 1), "{year}-Q{quarter}"), "first day of a quarter"),
        (Series(Every.MONTH, date(2026, 2, 3), "{year}-{month}"), "first day of a month"),
        (Series(Every.QUARTER, date(2026, 1, 1), "Q{quarter}"), "needs {year}"),
        (Series(Every.QUARTER, date(2026, 1, 1), "{year}"), "add {quarter}"),
        (Series(Every.MONTH, date(2026, 1, 1), "{year}-Q{quarter}"), "add {month}"),
        (Series(Every.QUARTER, date(2026, 1, 1), "{year}-{week}"), "unknown placeholder {week}"),
        (Series(Every.QUARTER, date(2026, 1, 1), "{year"), "malformed"),
    ],
)
def test_series_refusals(series: Series, message: str) -> None:
    assert any(message in problem for problem in series_problems(series))


def test_a_good_series_has_no_problems() -> None:
    assert series_problems(QUARTERS) == []


def test_lifecycle_states() -> None:
    q4 = Span("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
    assert state_at(q4, at("2026-09-30T23:59:59")) is CycleState.UPCOMING
    assert state_at(q4, at("2026-10-01T00:00:00")) is CycleState.ACTIVE
    assert state_at(q4, at("2026-12-31T23:59:59")) is CycleState.ACTIVE  # the last day counts
    assert state_at(q4, at("2027-01-01T00:00:00")) is CycleState.CLOSING
    assert state_at(q4, at("2027-01-07T23:59:59")) is CycleState.CLOSING
    assert state_at(q4, at("2027-01-08T00:00:00")) is CycleState.CLOSED
    short = timedelta(days=2)
    assert state_at(q4, at("2027-01-03T00:00:00"), close_after=short) is CycleState.CLOSED
    assert state_at(q4, at("2027-01-01T00:00:00"), close_after=timedelta(0)) is CycleState.CLOSED


def test_closed_early_by_command() -> None:
    q4 = Span("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
    closed = at("2026-12-20T10:00:00")
    assert state_at(q4, at("2026-12-20T09:59:59"), closed_at=closed) is CycleState.ACTIVE
    assert state_at(q4, at("2026-12-20T10:00:00"), closed_at=closed) is CycleState.CLOSED


def test_state_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        state_at(Span("x", date(2026, 1, 1), date(2026, 1, 2)), datetime(2026, 1, 1))


@settings(max_examples=60, deadline=None)
@given(
    every=st.sampled_from(list(Every)),
    first_index=st.integers(min_value=1990 * 12, max_value=2090 * 12),
    offset_days=st.integers(min_value=-400, max_value=4000),
)
def test_series_tile_time_without_gaps_or_overlaps(
    every: Every, first_index: int, offset_days: int
) -> None:
    months = every.months
    first_index -= first_index % months  # a first month of a quarter / half
    first = date(first_index // 12, first_index % 12 + 1, 1)
    series = Series(every, first, "{year}-{quarter}-{half}-{month}")
    today = first + timedelta(days=offset_days)
    spans = expand(series, today)
    assert spans[0].start == first
    for earlier, later in itertools.pairwise(spans):
        assert later.start == earlier.end + timedelta(days=1)
        assert later.start.day == 1
    assert len({s.id for s in spans}) == len(spans)
    for span in spans:
        assert add_months(span.start, months) == span.end + timedelta(days=1)
    now = current(spans, today)
    assert now is not None
    if today >= first:
        assert now.start <= today <= now.end
        assert spans[-1].start > today  # one ahead is listed
        assert spans[-2] == now
    # the states of consecutive spans at one moment never go backwards
    moment = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    order = list(CycleState)
    states = [order.index(state_at(s, moment, close_after=timedelta(0))) for s in spans]
    assert states == sorted(states, reverse=True)
    if len(spans) > 1:
        assert closes_at(spans[0], timedelta(0)) == datetime.combine(
            spans[1].start, datetime.min.time(), tzinfo=UTC
        )
