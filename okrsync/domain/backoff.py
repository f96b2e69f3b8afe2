"""Capped exponential backoff, and how long a failing connection rests before it is asked again.
Pure.

:func:`capped_exponential` is the one backoff formula: a failing connection's rest, a failed
delivery's retry, the daemon's wait for an unreachable store and an HTTP request's retry all use it
with their own base and ceiling.

One failed pass is noise; a connection that fails pass after pass is backed off exponentially
(with a ceiling) so a broken vendor is not hammered and its quota not burnt, while the other
connections go on. A quota pause lasts until the vendor's or our own budget says it resets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

FAILURES_BEFORE_BACKOFF = 3
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CEILING = timedelta(minutes=30)
QUOTA_PAUSE_DEFAULT = timedelta(minutes=15)

# Past this many doublings every ceiling is reached (2**62 times any base is beyond any ceiling
# used), so a long outage's step count never grows the arithmetic.
_MAX_DOUBLINGS = 62


class JitterSource(Protocol):
    """Where jitter comes from: :class:`random.Random` or a seeded one in a test."""

    def uniform(self, a: float, b: float) -> float: ...


def capped_exponential(
    step: int, base: float, ceiling: float, jitter: JitterSource | None = None
) -> float:
    """``base * 2**step`` capped at ``ceiling`` (a negative step counts as 0), in base's unit.

    With a ``jitter`` source the delay is drawn uniformly between half of it (never below
    ``base``) and the whole of it, so many clients failing together do not retry together.
    """
    delay = min(base * float(1 << min(max(step, 0), _MAX_DOUBLINGS)), ceiling)
    if jitter is None:
        return delay
    return jitter.uniform(max(base, delay / 2), delay)


def failure_pause(consecutive_failures: int) -> timedelta | None:
    """None for the first few failures, then 30 s, 60 s, 120 s … capped at 30 minutes."""
    if consecutive_failures < FAILURES_BEFORE_BACKOFF:
        return None
    seconds = capped_exponential(
        consecutive_failures - FAILURES_BEFORE_BACKOFF,
        BACKOFF_BASE.total_seconds(),
        BACKOFF_CEILING.total_seconds(),
    )
    return timedelta(seconds=seconds)


def quota_resume(now: datetime, resume_at: datetime | None) -> datetime:
    """When a connection paused for quota may try again."""
    return resume_at if resume_at is not None and resume_at > now else now + QUOTA_PAUSE_DEFAULT
