"""The time windows the work views count in: "done this week" and "done since the last push".

Pure: the clock is an argument.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FIRST_PUSH_WINDOW = timedelta(days=7)


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week ``now`` falls in: where "done this week" starts."""
    day = now.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def done_since(shown_at: datetime | None, now: datetime) -> datetime:
    """Where a push's "done since the last push" starts: when the state the mirror shows was
    recorded, or, for a mirror that shows nothing yet, ``FIRST_PUSH_WINDOW`` before ``now``."""
    return shown_at if shown_at is not None else now - FIRST_PUSH_WINDOW
