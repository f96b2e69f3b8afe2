"""The cycles section: explicit time boxes and generated series, and what ``cycle: current`` means.

An entry is either a cycle (``{id, start, end}``) or a series (``{every, from, id}``, the id a
template such as ``"{year}-Q{quarter}"``); both may give ``close_after``, else
``defaults.close_after``, else 7 days. A series is expanded (:func:`okrsync.domain.cycles.expand`)
relative to the day the config is loaded: every cycle from ``from`` up to the current one and the
next, so the config runs for years without date edits.

``cycle: current`` on an objective follows the series: it names the series' oldest cycle that has
not closed by the calendar (active, or still closing, or the first upcoming one) on the day the
config is loaded. The same objectives roll into the next cycle when the config is next loaded
after that cycle closed (a restart), while the closed cycle keeps its frozen close-out record. It
is declared only when the config has exactly one series.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from okrsync.config import fields
from okrsync.config.crossrefs import CrossReferences, UniqueIds
from okrsync.config.fields import CycleId
from okrsync.config.models import CycleDef, CycleDocument, CycleSeriesDocument
from okrsync.config.pydantic_errors import check
from okrsync.config.readers import ValueReader
from okrsync.config.yaml_source import KeyPath
from okrsync.domain.cycles import (
    DEFAULT_CLOSE_AFTER,
    CycleState,
    Series,
    day_start,
    expand,
    series_problems,
    state_at,
)

CURRENT = "current"
"""The cycle name an objective gives to follow the (one) series' current cycle."""

_DURATION = TypeAdapter(fields.Duration)
_CYCLE_ID = TypeAdapter(CycleId)


def default_close_after(defaults: object) -> timedelta:
    """``defaults.close_after`` if it is a valid duration (its errors are the defaults reader's
    to report), else 7 days."""
    if isinstance(defaults, dict) and defaults.get("close_after") is not None:
        try:
            found = _DURATION.validate_python(defaults["close_after"])
        except ValidationError:
            return DEFAULT_CLOSE_AFTER
        if found is not None:
            return found
    return DEFAULT_CLOSE_AFTER


class CyclesReader:
    """Reads the cycles section; :attr:`current` is what ``cycle: current`` resolves to."""

    def __init__(self, read: ValueReader, refs: CrossReferences, today: date) -> None:
        self.read = read
        self.refs = refs
        self.today = today
        self.ids = UniqueIds(read, "cycle")
        self.cycles: dict[str, CycleDef] = {}
        self.series: list[tuple[KeyPath, list[CycleDef]]] = []
        self.current: str | None = None
        self.followed: Series | None = None  # the one series ``cycle: current`` follows

    def section(self, value: object, default_close: timedelta) -> dict[str, CycleDef]:
        path: KeyPath = ("cycles",)
        if value is None:
            return self.cycles
        items = self.read.sequence(path, value, "cycles")
        if items is None:
            self.refs.declared_cycles = None
            return self.cycles
        for index, item in enumerate(items):
            where = (*path, index)
            if not isinstance(item, dict):
                self.read.problem(
                    where,
                    "expected a cycle with id, start and end, or a series with every, from and "
                    f"id (a mapping of keys), got {self.read.show(where, item)}",
                )
            elif "every" in item:
                self._series(where, item, default_close)
            else:
                self._explicit(where, item, default_close)
        if len(self.series) == 1:
            self.current = current_cycle(self.series[0][1], self.today)
            if self.refs.declared_cycles is not None:
                self.refs.declared_cycles.add(CURRENT)
        return self.cycles

    def _declare(self, cycle_id: object) -> None:
        if self.refs.declared_cycles is not None and cycle_id is not None:
            self.refs.declared_cycles.add(str(cycle_id))

    def _explicit(self, where: KeyPath, item: dict[str, Any], default_close: timedelta) -> None:
        self._declare(item.get("id"))
        document, problems = check(CycleDocument, item)
        for loc, message in problems:
            self.read.problem((*where, *loc), message)
        if not isinstance(document, CycleDocument):
            return
        if document.id == CURRENT:
            self.read.problem((*where, "id"), f"{CURRENT!r} is reserved for `cycle: current`")
            return
        if not self.ids.claim(document.id, (*where, "id")):
            return
        if document.end < document.start:
            self.read.problem(
                (*where, "end"),
                f"cycle ends ({document.end.isoformat()}) before it starts "
                f"({document.start.isoformat()})",
            )
            return
        close = document.close_after if document.close_after is not None else default_close
        self.cycles[document.id] = CycleDef(document.id, document.start, document.end, close)

    def _series(self, where: KeyPath, item: dict[str, Any], default_close: timedelta) -> None:
        document, problems = check(CycleSeriesDocument, item)
        for loc, message in problems:
            self.read.problem((*where, *loc), message)
        if not isinstance(document, CycleSeriesDocument):
            return
        series = Series(document.every, document.from_, document.id)
        found = series_problems(series)
        for message in found:
            key = "from" if message.startswith("from") else "id"
            self.read.problem((*where, key), message)
        if found:
            return
        spans = expand(series, self.today)
        try:
            _CYCLE_ID.validate_python(spans[0].id)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            self.read.problem(
                (*where, "id"), f"the template makes ids such as {spans[0].id!r}: {reason}"
            )
            return
        close = document.close_after if document.close_after is not None else default_close
        generated: list[CycleDef] = []
        for span in spans:
            self._declare(span.id)
            if not self.ids.claim(span.id, (*where, "id")):
                return
            cycle = CycleDef(span.id, span.start, span.end, close, series=document.id)
            self.cycles[span.id] = cycle
            generated.append(cycle)
        self.series.append((where, generated))
        self.followed = series


def current_cycle(generated: list[CycleDef], today: date) -> str | None:
    """The oldest cycle of a series not closed by the calendar at the start of ``today``
    (what ``cycle: current`` resolves to when the config is loaded on ``today``)."""
    moment = day_start(today)
    for cycle in generated:
        if state_at(cycle.span(), moment, close_after=cycle.close_after) is not CycleState.CLOSED:
            return cycle.id
    return generated[-1].id if generated else None
