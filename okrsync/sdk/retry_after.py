"""Reading ``Retry-After`` (RFC 9110 §10.2.3) into a number of seconds to wait.

Vendors send both legal forms: delay-seconds (Jira, Slack, GitHub's secondary limit) and an
HTTP-date (some proxies and CDNs in front of them). Some also send a decimal, which the RFC does
not allow but which means what it obviously means, so we accept it. Anything else is ignored
rather than guessed at: a wrong guess could park a connection for hours, while ignoring the
header only falls back to ordinary exponential backoff.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` until the vendor wants to hear from us again, or ``None``.

    ``now`` is passed in rather than read from the clock so the function stays pure and the
    HTTP-date form can be tested exactly. A date in the past means "now": 0, never negative.
    Naive datetimes (from ``now`` or from a ``-0000`` zone in the header) are taken as UTC,
    which is what HTTP dates always are.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
