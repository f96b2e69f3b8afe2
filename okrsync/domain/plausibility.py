"""Whether a source's number can be true, before it becomes a key result's value. Pure.

A reading is refused when its number is not finite (NaN, Infinity), of an absurd size (an
exponent no business figure has, which would also overflow the arithmetic of progress), a
negative count (the query says it counts, see :meth:`QuerySpec.is_count`), or outside the
``min``/``max`` its metric declares. A refused reading becomes an error reading, exactly like a
vendor's error: the key result keeps its value, ``status`` shows the metric's error and the
connection's health says what happened.

A question shared by several metrics (same connection, same query, same cycle) is asked once;
its answer is held to the bounds of every metric that asked it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from okrsync.errors import VendorResponseError
from okrsync.sdk.models import Query, Reading

MAX_MAGNITUDE = Decimal("1e21")
"""No reading is this large (a trillion trillion cents is still below it): beyond it lie exponents
that only a broken or generated answer has."""
MIN_MAGNITUDE = Decimal("1e-30")
"""A non-zero reading smaller than this is an absurd exponent too (float noise is ~1e-17)."""
MAX_DIGITS = 34
"""Significant digits a reading may carry; more cannot be a measurement."""
_SHOWN = 40  # characters of a refused number quoted in the error


@dataclass(frozen=True)
class Bounds:
    """The range a metric's readings must lie in, both ends inclusive; ``None``: unbounded."""

    low: Decimal | None = None
    high: Decimal | None = None

    def __and__(self, other: Bounds) -> Bounds:
        """The bounds both ask for: the higher low and the lower high."""
        lows = [b for b in (self.low, other.low) if b is not None]
        highs = [b for b in (self.high, other.high) if b is not None]
        return Bounds(max(lows, default=None), min(highs, default=None))

    def breach(self, value: Decimal) -> str | None:
        """How a finite ``value`` lies outside these bounds; ``None`` when inside."""
        if self.low is not None and value < self.low:
            return f"{_shown(value)} is below the metric's min {self.low}"
        if self.high is not None and value > self.high:
            return f"{_shown(value)} is above the metric's max {self.high}"
        return None


UNBOUNDED = Bounds()


class ImplausibleValueError(VendorResponseError):
    """The source answered a number that cannot be the metric's value; nothing was recorded."""


def implausibility(
    value: Decimal, bounds: Bounds = UNBOUNDED, *, count: bool = False
) -> str | None:
    """Why ``value`` cannot be a reading of a metric with ``bounds`` (a count when ``count``);
    ``None`` when it can."""
    if not value.is_finite():
        return f"{value} is not a finite number"
    if abs(value) >= MAX_MAGNITUDE or (value != 0 and abs(value) < MIN_MAGNITUDE):
        return f"{_shown(value)} is of an absurd magnitude (readings lie within 1e-30..1e21)"
    if len(value.as_tuple().digits) > MAX_DIGITS:
        return f"{_shown(value)} has more than {MAX_DIGITS} significant digits"
    if count and value < 0:
        return f"{_shown(value)} is a negative count"
    return bounds.breach(value)


def query_bounds(query: Query[Any], bounds: Mapping[str, Bounds]) -> Bounds:
    """The bounds ``query``'s answer is held to: those of every metric that asked it."""
    combined = UNBOUNDED
    for metric in query.metrics:
        combined &= bounds.get(metric, UNBOUNDED)
    return combined


def checked(reading: Reading, query: Query[Any], bounds: Bounds = UNBOUNDED) -> Reading:
    """``reading`` as it is, or as that query's error when its number is implausible."""
    if reading.value is None or reading.error is not None:
        return reading
    problem = implausibility(reading.value, bounds, count=query.spec.is_count())
    if problem is None:
        return reading
    refused = ImplausibleValueError(f"refused the answer: {problem}")
    return replace(reading, value=None, error=refused.for_subject(query.connection, query.subject))


def check_readings(
    queries: Iterable[Query[Any]], readings: list[Reading], bounds: Mapping[str, Bounds]
) -> list[Reading]:
    """Every reading of ``queries`` checked against its query (``bounds`` by metric name)."""
    by_key = {query.key: query for query in queries}
    out = []
    for reading in readings:
        query = by_key.get(reading.key)
        if query is not None:
            reading = checked(reading, query, query_bounds(query, bounds))
        out.append(reading)
    return out


def _shown(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 1]}…"
