"""Cycles as time: generated series of quarters, months or halves, and a cycle's lifecycle state.

A cycle covers whole UTC days, from its ``start`` 00:00 UTC to the end of its ``end`` day (as
:func:`okrsync.domain.status.elapsed_fraction` counts it). Its lifecycle at a moment:

* ``upcoming`` before it starts;
* ``active`` from its start to the end of its last day;
* ``closing`` for ``close_after`` (default 7 days) after that: late numbers still arrive and
  values still update;
* ``closed`` afterwards, or earlier when someone closed it by command (``closed_at``): its
  final values are frozen and its key results' metrics are not fetched any more.

A *series* (``every: quarter, from: 2027-01-01, id: "{year}-Q{quarter}"``) stands for as many
consecutive cycles as time needs: :func:`expand` lists them from ``from`` up to a horizon after
"today" (given, never read from a clock), so a config runs for years without date edits.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

DEFAULT_CLOSE_AFTER = timedelta(days=7)
ID_FIELDS = frozenset({"year", "quarter", "half", "month"})


class Every(StrEnum):
    """How long each cycle of a series lasts."""

    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"

    @property
    def months(self) -> int:
        return {Every.MONTH: 1, Every.QUARTER: 3, Every.HALF: 6}[self]


class CycleState(StrEnum):
    UPCOMING = "upcoming"
    ACTIVE = "active"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class Span:
    """One cycle's id and days (``end`` is its last day, inclusive)."""

    id: str
    start: date
    end: date


@dataclass(frozen=True)
class Series:
    every: Every
    first: date  # ``from``: the first day of the first cycle
    id_template: str


def template_problems(template: str) -> list[str]:
    """Why ``template`` cannot name a series' cycles; empty when it can.

    Only ``{year}``, ``{quarter}``, ``{half}`` and ``{month}`` may appear, and ``{year}`` must
    (without it the ids repeat every year)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"id template {template!r} is malformed: {exc}"]
    names = [name for _, name, _spec, _conv in parsed if name is not None]
    problems = [
        f"unknown placeholder {{{name}}} in id template; use {{year}}, {{quarter}}, "
        "{half} or {month}"
        for name in names
        if name not in ID_FIELDS
    ]
    if not problems and "year" not in names:
        problems.append(f"id template {template!r} needs {{year}}, or its ids repeat every year")
    return problems


def series_problems(series: Series) -> list[str]:
    """Why a series cannot be expanded: its ``from`` must start a cycle of its length (the
    first of a month, of a calendar quarter, or of a half), so ids name the cycle they cover,
    and its template must tell every cycle apart."""
    problems = template_problems(series.id_template)
    start = series.first
    if start.day != 1 or (start.month - 1) % series.every.months:
        firsts = {Every.MONTH: "a month", Every.QUARTER: "a quarter", Every.HALF: "a half-year"}
        problems.append(
            f"from ({start.isoformat()}) must be the first day of {firsts[series.every]} "
            f"for every: {series.every}"
        )
    names = {name for _, name, _spec, _conv in _parsed(series.id_template)}
    telling = _TELLING[series.every]
    if not problems and not names & telling:
        problems.append(
            f"id template {series.id_template!r} gives every {series.every} of a year the same "
            f"id; add {{{series.every.value}}}"
        )
    return problems


_TELLING = {  # placeholders that tell a series' cycles within one year apart
    Every.MONTH: frozenset({"month"}),
    Every.QUARTER: frozenset({"quarter", "month"}),
    Every.HALF: frozenset({"half", "quarter", "month"}),
}


def _parsed(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError:
        return []


def add_months(day: date, months: int) -> date:
    """The first of the month ``months`` after ``day``'s month (``day`` must be a first)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def span_at(series: Series, start: date) -> Span:
    """The cycle of ``series`` that starts on ``start`` (a first of its month)."""
    following = add_months(start, series.every.months)
    values = {
        "year": start.year,
        "quarter": (start.month - 1) // 3 + 1,
        "half": (start.month - 1) // 6 + 1,
        "month": f"{start.month:02d}",
    }
    return Span(series.id_template.format(**values), start, following - timedelta(days=1))


def expand(series: Series, today: date, *, ahead: int = 1) -> list[Span]:
    """The series' cycles from its first up to the one containing ``today`` and ``ahead`` more
    (the next one is listed while the current one is active, so objectives can be planned)."""
    spans: list[Span] = []
    start = series.first
    current_reached = False
    extra = 0
    while True:
        span = span_at(series, start)
        if current_reached or span.start > today:
            if extra >= ahead:
                break
            extra += 1
        spans.append(span)
        if span.start <= today <= span.end:
            current_reached = True
        start = add_months(start, series.every.months)
    return spans


def current(spans: list[Span], today: date) -> Span | None:
    """The span containing ``today``; before the first one, the first; after all, None."""
    for span in spans:
        if span.start <= today <= span.end:
            return span
    if spans and today < spans[0].start:
        return spans[0]
    return None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def ends_at(span: Span) -> datetime:
    """When the cycle's last day is over."""
    return day_start(span.end + timedelta(days=1))


def closes_at(span: Span, close_after: timedelta = DEFAULT_CLOSE_AFTER) -> datetime:
    """When the grace period after the cycle's end is over, and the cycle closes by itself."""
    return ends_at(span) + close_after


def state_at(
    span: Span,
    at: datetime,
    *,
    close_after: timedelta = DEFAULT_CLOSE_AFTER,
    closed_at: datetime | None = None,
) -> CycleState:
    """The lifecycle state of ``span`` at ``at`` (timezone-aware). ``closed_at``: when it was
    closed in the store (early by command, or by the daemon); from then on it is closed."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("state_at needs a timezone-aware datetime")
    if closed_at is not None and closed_at <= at:
        return CycleState.CLOSED
    if at < day_start(span.start):
        return CycleState.UPCOMING
    if at < ends_at(span):
        return CycleState.ACTIVE
    if at < closes_at(span, close_after):
        return CycleState.CLOSING
    return CycleState.CLOSED
