"""How the dashboard writes values, moments and dates for people (the templates' filters)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from okrsync.domain.numbers import decimals_for, format_number
from okrsync.domain.progress import display_progress, percent
from okrsync.store import dashboard_pages as pages

DASH = "\u2013"  # en dash, for ranges


def number(value: Decimal | None, unit: str | None = None, decimals: int | None = None) -> str:
    """``30500`` USD → ``30,500 USD``, ``87.25`` % → ``87.3%``: the mirrors' rule
    (:mod:`okrsync.domain.numbers`: the key result's ``decimals``, else its unit's; half-up);
    the unit after."""
    if value is None:
        return "—"
    places = decimals_for(unit, decimals)
    text = format_number(value, places) if value.is_finite() else str(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def percent_text(progress: Decimal | None) -> str:
    if progress is None:
        return "—"
    return f"{percent(progress).normalize():f}%"


def bar_width(progress: Decimal | None) -> str:
    if progress is None:
        return "0"
    return f"{float(display_progress(progress)) * 100:.1f}"


def when(at: datetime | None) -> str:
    return "never" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def iso_when(raw: object) -> str:
    try:
        return when(datetime.fromisoformat(str(raw)))
    except ValueError:
        return str(raw)


def ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = (now - at).total_seconds()
    if seconds < 0:
        return when(at)
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {name} ago"
    return "just now"


def cycle_dates(cycle: pages.Cycle | None) -> str:
    if cycle is None:
        return ""
    if cycle.start.year == cycle.end.year:
        return f"{day(cycle.start)} {DASH} {day(cycle.end)} {cycle.end.year}"
    return f"{day(cycle.start)} {cycle.start.year} {DASH} {day(cycle.end)} {cycle.end.year}"


def day(of: date) -> str:
    return f"{of.day} {of:%b}"
