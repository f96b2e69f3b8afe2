"""Burn-up charts as inline SVG: dates and values mapped to coordinates by pure functions.

``burnup_scale``, ``pace_line`` and ``sample_points`` place a key result's measurements, its pace
line (or its thresholds) and today inside a :class:`Plot`; ``burnup_svg`` draws them. The
geometry is tested without a browser. The SVG escapes every text it prints, so the dashboard's
templates may include it as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from okrsync.api.formatting import day, number

MAX_MARKERS = 40
"""Above this many points a chart draws the line and marks only the latest value."""

HEADROOM = 0.1
"""Share of the start-to-target span drawn beyond each end; values further out are clipped."""

PACED_KINDS = frozenset({"increase", "decrease"})

Sample = tuple[datetime, Decimal]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Plot:
    """The SVG canvas (viewBox units) and the margins around the plotting area."""

    width: float = 560.0
    height: float = 250.0
    left: float = 58.0
    right: float = 14.0
    top: float = 14.0
    bottom: float = 30.0

    @property
    def x_min(self) -> float:
        return self.left

    @property
    def x_max(self) -> float:
        return self.width - self.right

    @property
    def y_top(self) -> float:
        return self.top

    @property
    def y_bottom(self) -> float:
        return self.height - self.bottom


@dataclass(frozen=True)
class Scale:
    """Maps a moment to x and a value to y inside ``plot``; anything outside is clipped."""

    plot: Plot
    begin: datetime
    end: datetime
    low: float
    high: float

    def x(self, at: datetime) -> float:
        span = (self.end - self.begin).total_seconds()
        share = (at - self.begin).total_seconds() / span if span > 0 else 0.0
        return round(self.plot.x_min + _unit(share) * (self.plot.x_max - self.plot.x_min), 2)

    def y(self, value: Decimal | float) -> float:
        share = (float(value) - self.low) / (self.high - self.low)
        return round(self.plot.y_bottom - _unit(share) * (self.plot.y_bottom - self.plot.y_top), 2)


def _line(css: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="{css}" x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}"/>'


def _unit(share: float) -> float:
    if math.isnan(share):
        return 0.0
    return min(max(share, 0.0), 1.0)


def cycle_window(start: date, end: date) -> tuple[datetime, datetime]:
    """A cycle runs from its start date 00:00 UTC to the end of its end date (as status does)."""
    return (
        datetime.combine(start, time(), tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
    )


def references(
    kind: str,
    start: Decimal | None,
    target: Decimal | None,
    low: Decimal | None = None,
    high: Decimal | None = None,
) -> list[Decimal]:
    """The values a key result of ``kind`` is judged against (drawn as lines or a band)."""
    if kind in PACED_KINDS:
        candidates = [start, target]
    elif kind == "stay_between":
        candidates = [low, high]
    else:
        candidates = [target]
    return [v for v in candidates if v is not None and v.is_finite()]


def burnup_scale(
    plot: Plot,
    cycle_start: date,
    cycle_end: date,
    kind: str,
    refs: Sequence[Decimal],
    samples: Sequence[Sample],
) -> Scale:
    """The chart's domain: the cycle in time (widened to any value observed outside it) and, in
    value, start to target plus ``HEADROOM`` for increase/decrease (so over-achievement is clipped
    at the edge instead of squashing the pace line), or every reference and value otherwise."""
    begin, end = cycle_window(cycle_start, cycle_end)
    if samples:
        begin = min(begin, min(at for at, _ in samples))
        end = max(end, max(at for at, _ in samples))
    pool = [float(v) for v in refs]
    if not (kind in PACED_KINDS and len(pool) == 2):
        pool += [float(v) for _, v in samples if v.is_finite()]
    pool = [v for v in pool if math.isfinite(v)] or [0.0, 1.0]
    lo, hi = min(pool), max(pool)
    span = hi - lo
    if span == 0:
        span = abs(hi) or 1.0
        lo, hi = lo - span / 2, hi + span / 2
    pad = span * HEADROOM
    return Scale(plot, begin, end, lo - pad, hi + pad)


def pace_line(
    scale: Scale, cycle_start: date, cycle_end: date, start: Decimal, target: Decimal
) -> tuple[Point, Point]:
    """The expected pace: a straight line from start on the first day to target at the end."""
    begin, end = cycle_window(cycle_start, cycle_end)
    return Point(scale.x(begin), scale.y(start)), Point(scale.x(end), scale.y(target))


def sample_points(scale: Scale, samples: Sequence[Sample]) -> list[Point]:
    """Each measurement placed by its date and value, in the order given."""
    return [Point(scale.x(at), scale.y(value)) for at, value in samples]


def polyline_points(points: Sequence[Point]) -> str:
    return " ".join(f"{_n(p.x)},{_n(p.y)}" for p in points)


def _n(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class BurnupChart:
    """What one key result's chart needs, independent of the store."""

    title: str
    kind: str
    unit: str | None
    cycle_start: date
    cycle_end: date
    start: Decimal | None
    target: Decimal | None
    samples: Sequence[Sample]
    now: datetime
    low: Decimal | None = None
    high: Decimal | None = None
    decimals: int | None = None  # the key result's own; None: its unit's
    plot: Plot = field(default_factory=Plot)
    # when the key result's linked work items were done (issue 15): marks on the time axis
    work_done: Sequence[tuple[datetime, str]] = ()


def burnup_svg(chart: BurnupChart) -> str:
    """The chart as an inline ``<svg>``: grid and axes, the pace line (or threshold lines / band),
    today, and the actual values as one ``polyline`` with one vertex per measurement."""
    plot = chart.plot
    samples = [(at, v) for at, v in chart.samples if v.is_finite()]
    refs = references(chart.kind, chart.start, chart.target, chart.low, chart.high)
    scale = burnup_scale(plot, chart.cycle_start, chart.cycle_end, chart.kind, refs, samples)
    parts: list[str] = [
        f'<svg class="burnup" viewBox="0 0 {_n(plot.width)} {_n(plot.height)}" role="img" '
        f'aria-label="{_e(_chart_summary(chart, samples))}" xmlns="http://www.w3.org/2000/svg">'
    ]
    parts += _y_axis(scale)
    parts += _x_axis(scale, chart.cycle_start, chart.cycle_end)
    if chart.kind == "stay_between" and len(refs) == 2:
        top, bottom = scale.y(max(refs)), scale.y(min(refs))
        parts.append(
            f'<rect class="band" x="{_n(plot.x_min)}" y="{_n(top)}" '
            f'width="{_n(plot.x_max - plot.x_min)}" height="{_n(bottom - top)}"/>'
        )
    if chart.kind in PACED_KINDS and chart.start is not None and chart.target is not None:
        a, b = pace_line(scale, chart.cycle_start, chart.cycle_end, chart.start, chart.target)
        parts.append(
            f'<line class="pace" x1="{_n(a.x)}" y1="{_n(a.y)}" x2="{_n(b.x)}" y2="{_n(b.y)}"/>'
        )
    else:
        for ref in refs:
            y = scale.y(ref)
            parts.append(_line("pace", plot.x_min, y, plot.x_max, y))
    if scale.begin <= chart.now <= scale.end:
        x = scale.x(chart.now)
        parts.append(_line("today", x, plot.y_top, x, plot.y_bottom))
    parts += _done_marks(scale, chart.work_done)
    points = sample_points(scale, samples)
    if points:
        last_at = samples[-1][0]
        if chart.now > last_at:
            held_x = scale.x(min(chart.now, scale.end))
            parts.append(
                f'<line class="held" x1="{_n(points[-1].x)}" y1="{_n(points[-1].y)}" '
                f'x2="{_n(held_x)}" y2="{_n(points[-1].y)}"/>'
            )
        parts.append(f'<polyline class="actual" points="{polyline_points(points)}"/>')
        marked = range(len(points)) if len(points) <= MAX_MARKERS else [len(points) - 1]
        for i in marked:
            at, value = samples[i]
            label = f"{number(value, chart.unit, chart.decimals)} on {at:%Y-%m-%d %H:%M} UTC"
            parts.append(
                f'<circle class="dot" cx="{_n(points[i].x)}" cy="{_n(points[i].y)}" r="3.5">'
                f"<title>{_e(label)}</title></circle>"
            )
    else:
        parts.append(
            f'<text class="empty" x="{_n((plot.x_min + plot.x_max) / 2)}" '
            f'y="{_n((plot.y_top + plot.y_bottom) / 2)}" text-anchor="middle">no values yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


DONE_KEYS_NAMED = 8
"""Items named in a done mark's tooltip; the rest are counted."""


def done_days(work_done: Sequence[tuple[datetime, str]]) -> list[tuple[date, list[str]]]:
    """The linked items done, grouped by the UTC day they were done on, in day order: one mark
    per day, however many items were done that day."""
    by_day: dict[date, list[str]] = {}
    for at, key in sorted(work_done):
        by_day.setdefault(at.astimezone(UTC).date(), []).append(key)
    return sorted(by_day.items())


def _done_marks(scale: Scale, work_done: Sequence[tuple[datetime, str]]) -> list[str]:
    """A small triangle on the time axis for each day linked items were done, titled with them."""
    marks = []
    base = scale.plot.y_bottom
    for when, keys in done_days(work_done):
        at = datetime.combine(when, time(12), tzinfo=UTC)
        if not scale.begin <= at <= scale.end:
            continue
        named = ", ".join(keys[:DONE_KEYS_NAMED])
        rest = len(keys) - DONE_KEYS_NAMED
        label = (
            f"{len(keys)} work item{'s' if len(keys) != 1 else ''} done on {when:%Y-%m-%d}: "
            f"{named}{f' and {rest} more' if rest > 0 else ''}"
        )
        x = scale.x(at)
        marks.append(
            f'<path class="done" d="M{_n(x)} {_n(base)} l-4.5 -8 h9 z">'
            f"<title>{_e(label)}</title></path>"
        )
    return marks


def _chart_summary(chart: BurnupChart, samples: Sequence[Sample]) -> str:
    latest = (
        f"latest {number(samples[-1][1], chart.unit, chart.decimals)}"
        if samples
        else "no values yet"
    )
    return f"Burn-up of {chart.title}: {len(samples)} values, {latest}"


def nice_ticks(low: float, high: float, about: int = 6) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 times a power of ten) spanning ``[low, high]``."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return [low] if math.isfinite(low) else []
    raw = span / about
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """``250000`` → ``250k``; as many decimals as the step between ticks needs."""
    size, suffix = 1.0, ""
    for limit, name in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit and step >= limit / 100:
            size, suffix = limit, name
            break
    scaled = step / size
    decimals = next((d for d in range(7) if abs(round(scaled, d) - scaled) < scaled * 1e-6), 6)
    text = f"{value / size:,.{decimals}f}"
    return ("0" if float(value) == 0 else text) + (suffix if value != 0 else "")


def _y_axis(scale: Scale) -> list[str]:
    plot = scale.plot
    ticks = nice_ticks(scale.low, scale.high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(scale.high - scale.low) or 1.0
    out = []
    for value in ticks:
        y = scale.y(value)
        out.append(_line("grid", plot.x_min, y, plot.x_max, y))
        out.append(
            f'<text class="tick" x="{_n(plot.x_min - 6)}" y="{_n(y)}" text-anchor="end" '
            f'dominant-baseline="middle">{_e(tick_label(value, step))}</text>'
        )
    return out


def _x_axis(scale: Scale, cycle_start: date, cycle_end: date) -> list[str]:
    plot = scale.plot
    base = _n(plot.y_bottom)
    label_y = _n(plot.y_bottom + 18)
    out = [
        f'<line class="axis" x1="{_n(plot.x_min)}" y1="{base}" x2="{_n(plot.x_max)}" y2="{base}"/>'
    ]
    begin, end = cycle_window(cycle_start, cycle_end)
    edges = [(scale.x(begin), "start"), (scale.x(end), "end")]
    out.append(
        f'<text class="tick" x="{_n(edges[0][0])}" y="{label_y}" text-anchor="start">'
        f"{day(cycle_start)}</text>"
    )
    out.append(
        f'<text class="tick" x="{_n(edges[1][0])}" y="{label_y}" text-anchor="end">'
        f"{day(cycle_end)}</text>"
    )
    width = plot.x_max - plot.x_min
    month = date(cycle_start.year, cycle_start.month, 1)
    while True:
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        if month > cycle_end:
            break
        x = scale.x(datetime.combine(month, time(), tzinfo=UTC))
        out.append(
            f'<line class="grid" x1="{_n(x)}" y1="{_n(plot.y_top)}" x2="{_n(x)}" y2="{base}"/>'
        )
        if all(abs(x - edge) > width * 0.12 for edge, _ in edges):
            out.append(
                f'<text class="tick" x="{_n(x)}" y="{label_y}" text-anchor="middle">'
                f"{month:%b}</text>"
            )
    return out
