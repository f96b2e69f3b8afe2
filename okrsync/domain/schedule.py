"""When a metric is fetched next: schedule parsing and pure planning.

A schedule is either an interval (``every 15m``), anchored to the previous run, or a 5-field cron
string evaluated in UTC. Nothing here reads the clock: the daemon passes ``now`` and the time of
the last run, so planning is deterministic and tests need no sleeping or patching.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

from okrsync.errors import ScheduleError

MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
"""Longer intervals make no sense for key results, whose cycles are quarters or years, and would
let ``next_tick`` overflow ``datetime``."""

CRON_JITTER_BASE = timedelta(seconds=60)
"""What "the interval" is for a cron schedule when sizing jitter: cron cannot fire twice within
a minute, so 10 % of a minute is a jitter that can never push a run past the next tick, whatever
the cron string. (Measuring the gap between two ticks would over-estimate irregular schedules
such as ``0,1 * * * *``.)"""

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT = r"(?:seconds?|minutes?|hours?|days?|[smhd])"
_AMOUNTS = re.compile(rf"(?:\s*[0-9]{{1,15}}\s*{_UNIT})+\s*")
_AMOUNT = re.compile(rf"([0-9]+)\s*({_UNIT})")
_BARE_UNITS = {"second": "s", "minute": "m", "hour": "h", "day": "d"}
# croniter's "R" (random) and "H" (hashed) values: not reproducible from the text alone.
_UNPREDICTABLE = re.compile(r"(?<![a-z])[rh](?![a-z])")

# A moment from which every valid cron string has a next tick; used to reject strings such as
# "0 0 30 2 *" (February 30th) that croniter accepts but that never fire.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def _not_a_schedule(text: str) -> ScheduleError:
    return ScheduleError(
        f"{text!r} is not a schedule: use 'every <n>s|m|h|d' (e.g. 'every 15m') "
        "or a 5-field cron string (e.g. '*/10 * * * *')"
    )


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: exactly one of ``interval`` and ``cron`` is set."""

    text: str
    interval: timedelta | None
    cron: str | None

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("a Schedule has exactly one of interval and cron")

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read ``every <duration>`` or a 5-field cron string, or raise ``ScheduleError``.

        Durations combine ``<n><unit>`` parts, each unit at most once, with units ``s m h d`` or
        their long forms (``second(s)``, ``minute(s)``, ``hour(s)``, ``day(s)``), optionally
        separated by spaces: ``every 1h30m``, ``every 5 minutes``. A lone long unit means one of
        it (``every day``). Case is ignored. Intervals run from one second to 366 days.

        Cron strings follow croniter with standard day-of-month/day-of-week "or" semantics, are
        evaluated in UTC, and must fire at some point; croniter's random and hashed values
        (``R``, ``H``) are refused because they would make runs unpredictable.
        """
        words = text.strip().lower()
        if words == "every" or words.startswith(("every ", "every\t")):
            return cls(text=text, interval=_parse_interval(text, words[len("every") :]), cron=None)
        return cls(text=text, interval=None, cron=_parse_cron(text))

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (timezone-aware), as an aware UTC datetime.

        Intervals are added in UTC, so a daylight-saving change in ``after``'s zone cannot make
        an hourly schedule wait zero or two hours.
        """
        return next(self._ticks(after))

    def _ticks(self, after: datetime) -> Iterator[datetime]:
        """Successive ticks strictly after ``after``, without end."""
        start = _utc(after, "after")
        if self.interval is not None:
            tick = start
            while True:
                tick += self.interval
                yield tick
        assert self.cron is not None
        ticks = croniter(self.cron, start)
        while True:
            tick = ticks.get_next(datetime)
            if tick > start:  # croniter works in whole seconds; never yield ``after`` itself
                yield tick


def _parse_interval(text: str, body: str) -> timedelta:
    body = body.strip()
    if body in _BARE_UNITS:
        return timedelta(seconds=_UNIT_SECONDS[_BARE_UNITS[body]])
    if not _AMOUNTS.fullmatch(body):
        raise _not_a_schedule(text)
    seconds = 0
    seen: set[str] = set()
    for amount, unit in _AMOUNT.findall(body):
        key = unit[0]
        if key in seen:
            raise ScheduleError(f"{text!r} gives the unit {unit!r} twice; write each unit once")
        seen.add(key)
        seconds += int(amount) * _UNIT_SECONDS[key]
    if seconds > MAX_INTERVAL.total_seconds():
        raise ScheduleError(f"{text!r} is too long: the longest interval is 366 days")
    interval = timedelta(seconds=seconds)
    if interval < MIN_INTERVAL:
        raise ScheduleError(f"{text!r} is too short: the shortest interval is 1 second")
    return interval


def _parse_cron(text: str) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise _not_a_schedule(text)
    cron = " ".join(fields)
    if _UNPREDICTABLE.search(cron.lower()):
        raise ScheduleError(
            f"{text!r} uses croniter's random or hashed values (R, H), which make runs "
            "unpredictable; write the minutes and hours explicitly"
        )
    try:
        ticks = croniter(cron, _REFERENCE)
    except CroniterError as exc:
        raise ScheduleError(f"{text!r} is not a valid cron string: {exc}") from None
    try:
        ticks.get_next(datetime)
    except CroniterError as exc:
        raise ScheduleError(f"{text!r} never fires ({exc}); check the day and month") from None
    return cron


def _utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def jitter(
    key: str, schedule: Schedule, max_jitter: timedelta = timedelta(seconds=30)
) -> timedelta:
    """A fixed delay for ``key``, so metrics sharing a schedule do not all fire at once.

    It is derived from ``sha256(key)``, hence the same on every run and every host, and lies in
    ``[0, min(max_jitter, 10 % of the interval)]`` at millisecond resolution. For cron schedules
    the "interval" is taken to be one minute (see ``CRON_JITTER_BASE``), so the jitter is at most
    6 seconds. Staying under 10 % of the interval keeps runs in order: a jittered run never lands
    on or after the following tick.

    Interval ticks lie on a grid anchored at the Unix epoch and cron ticks are absolute, so the
    jitter is only an offset: runs do not drift by it. The daemon keys it by the metric's
    query (see :func:`shared_jitter`), not by the metric, so metrics reading one answer run
    together.
    """
    if max_jitter < timedelta(0):
        raise ValueError("max_jitter must not be negative")
    base = schedule.interval if schedule.interval is not None else CRON_JITTER_BASE
    cap_ms = min(max_jitter, base / 10) // timedelta(milliseconds=1)
    draw = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    # ``draw / 2**64`` is uniform in [0, 1); scaling by cap + 1 makes both ends reachable.
    return timedelta(milliseconds=(draw * (cap_ms + 1)) >> 64)


def shared_jitter(
    key: str, schedules: Iterable[Schedule], max_jitter: timedelta = timedelta(seconds=30)
) -> timedelta:
    """One offset for every metric that shares the query (or request) named by ``key``.

    Metrics reading one answer must fall due in the same pass, or each pass asks the vendor
    again. Their schedules may differ (``every 1m`` beside ``every 1h``), so the offset is
    ``key``'s jitter under the tightest of them: the draw is the same, and the smallest cap
    keeps it under 10 % of every interval, so each schedule keeps its runs in order, and ticks
    that coincide on the epoch grid (the hourly one is also a minutely one) coincide in time.
    """
    offsets = [jitter(key, schedule, max_jitter) for schedule in schedules]
    if not offsets:
        raise ValueError("shared_jitter needs at least one schedule")
    return min(offsets)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Due:
    """When to run next, and how many ticks that run stands for.

    ``missed`` is 0 for an on-time or first run. When the run is late (the daemon was down, or
    busy), it is the number of ticks that passed since the last run, the one being run now
    included, capped at the catch-up limit: 1 means only that tick, more means ticks were
    skipped. All of them are coalesced into the one run, which fetches current values once.
    """

    at: datetime
    missed: int


def plan_next(
    schedule: Schedule,
    last_run: datetime | None,
    now: datetime,
    *,
    key: str = "",
    offset: timedelta | None = None,
    catch_up_limit: int = 100,
    max_jitter: timedelta = timedelta(seconds=30),
) -> Due:
    """When the metric identified by ``key`` should run next, given its last run and ``now``.

    ``offset``, when given, is the jitter to use instead of ``key``'s own (the daemon passes the
    :func:`shared_jitter` of the metric's query, so metrics sharing a query share their ticks);
    it must stay under 10 % of the interval (a minute for cron) to keep runs in order.

    * never ran: run now;
    * otherwise the next tick after the last run, shifted by ``key``'s jitter, if still ahead;
      interval ticks lie on a grid anchored at the Unix epoch (``every 15m`` ticks at :00, :15,
      :30, :45 plus the jitter), so runs never drift and restarts keep the same rhythm;
    * if it is not, run now and report the ticks in ``(last_run, now]`` as missed, counting no
      further than ``catch_up_limit``: a one-second schedule after a year of downtime costs at
      most ``catch_up_limit`` steps (intervals are counted by division, in constant time).

    All datetimes must be timezone-aware; returned times are in UTC.
    """
    if catch_up_limit < 1:
        raise ValueError("catch_up_limit must be at least 1")
    now = _utc(now, "now")
    if last_run is None:
        return Due(at=now, missed=0)
    last_run = _utc(last_run, "last_run")
    if offset is None:
        offset = jitter(key, schedule, max_jitter)
    elif offset < timedelta(0):
        raise ValueError("offset must not be negative")
    if schedule.interval is not None:
        # Interval ticks sit on a grid anchored at the epoch and shifted by this key's jitter:
        # runs never drift by the jitter, and metrics on one schedule stay spread out.
        step = schedule.interval
        done = (last_run - _EPOCH - offset) // step  # grid ticks at or before the last run
        due = _EPOCH + offset + (done + 1) * step
        if due > now:
            return Due(at=due, missed=0)
        missed = (now - _EPOCH - offset) // step - done
        return Due(at=now, missed=min(missed, catch_up_limit))
    ticks = schedule._ticks(last_run)
    first = next(ticks)
    due = first + offset
    if due > now:
        return Due(at=due, missed=0)
    missed = 1  # ``first`` is at or before ``due``, hence at or before now
    while missed < catch_up_limit and next(ticks) <= now:
        missed += 1
    return Due(at=now, missed=missed)
