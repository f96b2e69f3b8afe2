"""``Retry-After`` in both RFC 9110 forms, and everything to ignore rather than guess at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.sdk.retry_after import parse_retry_after

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),  # not RFC, but unambiguous and sent by some vendors
    ],
)
def test_delay_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_http_date_in_the_future_is_seconds_from_now() -> None:
    assert parse_retry_after("Mon, 02 Mar 2026 12:00:45 GMT", NOW) == 45.0


def test_http_date_written_by_the_stdlib_round_trips() -> None:
    later = NOW + timedelta(minutes=5)
    assert parse_retry_after(format_datetime(later, usegmt=True), NOW) == 300.0


def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Mon, 02 Mar 2026 11:59:00 GMT", NOW) == 0.0


def test_http_date_with_an_offset_is_compared_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    later = (NOW + timedelta(seconds=10)).astimezone(paris)
    assert parse_retry_after(format_datetime(later), NOW) == 10.0


def test_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Mon, 02 Mar 2026 12:00:10 GMT", naive) == 10.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1e3", "inf", "nan", "5 seconds", "Mon, 99 Foo 2026", "0x10"],
)
def test_missing_or_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.integers(min_value=0, max_value=10**9))
def test_any_non_negative_integer_is_itself(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == float(seconds)


@given(st.integers(min_value=-(10**8), max_value=10**8))
def test_any_http_date_is_never_negative(offset: int) -> None:
    when = NOW + timedelta(seconds=offset)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == max(0, offset)
