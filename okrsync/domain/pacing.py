"""When a mirror may be pushed: a minimum interval, a minimum change and quiet hours. Pure.

A busy key result must not spam a channel: a change smaller than ``min_change`` (in progress
points, 0.05 = 5 points) with the same status is not pushed at all; a push within
``min_interval`` of the previous one, or inside quiet hours, is deferred (the outbox row waits,
and only the newest state is pushed when it comes due).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from okrsync.domain.schedule import Schedule

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    """A daily window (``22:00`` to ``07:00`` may wrap midnight) in a time zone."""

    start: time
    end: time
    timezone: str = "UTC"

    @classmethod
    def parse(cls, start: str, end: str, timezone: str = "UTC") -> QuietHours:
        """Raises ValueError with a sentence naming what is wrong."""
        times = []
        for label, text in (("start", start), ("end", end)):
            match = _CLOCK.match(text.strip())
            if match is None:
                raise ValueError(f"quiet hours {label} must look like 22:00, got {text!r}")
            times.append(time(int(match[1]), int(match[2])))
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (e.g. Europe/Berlin)") from None
        if times[0] == times[1]:
            raise ValueError("quiet hours start and end are the same time")
        return cls(times[0], times[1], timezone)

    def _bounds(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The quiet window containing ``at`` (in ``at``'s zone), or None."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        day = local.date()
        for offset in (-1, 0):
            start = datetime.combine(day + timedelta(days=offset), self.start, zone)
            end_day = start.date() + timedelta(days=1 if self.end <= self.start else 0)
            end = datetime.combine(end_day, self.end, zone)
            if start <= local < end:
                return start, end
        return None

    def resume_at(self, at: datetime) -> datetime:
        """``at`` itself outside quiet hours, else the end of the window it falls in."""
        window = self._bounds(at)
        return at if window is None else window[1].astimezone(at.tzinfo)


@dataclass(frozen=True)
class DeliveryPolicy:
    min_interval: timedelta | None = None
    min_change: Decimal | None = None
    quiet_hours: QuietHours | None = None
    on_change: bool = True  # push when the value changes (False: only on ``schedule``)
    schedule: Schedule | None = None  # also push on this cadence, changed or not
    announce_stale: bool = True  # push when the value passes its stale_after, and when confirmed


def earliest_push(policy: DeliveryPolicy, now: datetime, last_pushed: datetime | None) -> datetime:
    """The first moment a new state may be pushed to the mirror."""
    at = now
    if policy.min_interval is not None and last_pushed is not None:
        at = max(at, last_pushed + policy.min_interval)
    if policy.quiet_hours is not None:
        at = policy.quiet_hours.resume_at(at)
    return at


def worth_pushing(
    policy: DeliveryPolicy,
    previous: tuple[Decimal | None, str] | None,
    current: tuple[Decimal | None, str],
) -> bool:
    """Whether the state moved enough since the last one sent (or queued) to this mirror."""
    if policy.min_change is None or previous is None:
        return True
    (old_progress, old_status), (new_progress, new_status) = previous, current
    if old_status != new_status or old_progress is None or new_progress is None:
        return True
    return abs(new_progress - old_progress) >= policy.min_change
