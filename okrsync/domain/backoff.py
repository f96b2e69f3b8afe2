"""How long a failing connection rests before it is asked again. Pure.

One failed pass is noise; a connection that fails pass after pass is backed off exponentially
(with a ceiling) so a broken vendor is not hammered and its quota not burnt, while the other
connections go on. A quota pause lasts until the vendor's or our own budget says it resets.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FAILURES_BEFORE_BACKOFF = 3
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CEILING = timedelta(minutes=30)
QUOTA_PAUSE_DEFAULT = timedelta(minutes=15)


def failure_pause(consecutive_failures: int) -> timedelta | None:
    """None for the first few failures, then 30 s, 60 s, 120 s … capped at 30 minutes."""
    if consecutive_failures < FAILURES_BEFORE_BACKOFF:
        return None
    doublings = min(consecutive_failures - FAILURES_BEFORE_BACKOFF, 16)
    return min(BACKOFF_BASE * (1 << doublings), BACKOFF_CEILING)


def quota_resume(now: datetime, resume_at: datetime | None) -> datetime:
    """When a connection paused for quota may try again."""
    return resume_at if resume_at is not None and resume_at > now else now + QUOTA_PAUSE_DEFAULT
