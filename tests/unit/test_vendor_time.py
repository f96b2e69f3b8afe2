"""``vendor_time``: the timestamps the GitHub and Linear trackers read off their answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from okrsync.sdk.work import vendor_time


def test_zulu_and_offsets_are_read_as_aware_times() -> None:
    assert vendor_time("2026-11-12T09:30:00Z") == datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
    assert vendor_time("2026-11-12T09:30:00.123Z") == datetime(
        2026, 11, 12, 9, 30, 0, 123000, tzinfo=UTC
    )
    east = vendor_time("2026-11-12T10:30:00+01:00")
    assert east == datetime(2026, 11, 12, 10, 30, tzinfo=timezone(timedelta(hours=1)))


def test_missing_empty_or_unreadable_values_are_none() -> None:
    for value in (None, "", 1700000000, "yesterday", "2026-13-01T00:00:00Z", ["2026-11-12"]):
        assert vendor_time(value) is None
