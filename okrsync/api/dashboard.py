"""The dashboard: objectives, key results and burn-up charts as server-rendered HTML.

There is no front-end build and no JavaScript. Pages are Jinja2 templates (``templates/``, every
value autoescaped) with one inline stylesheet, and each burn-up chart is inline SVG computed here
by pure functions (``burnup_scale``, ``pace_line``, ``sample_points``, ``burnup_svg``) that map
dates and values to coordinates, so the geometry is tested without a browser; the SVG escapes what
it prints and is the only markup handed to the templates as is. Everything shown comes from user
config or vendor answers; of a measurement's provenance only the connection, query, run, fetch
time and answer digest are shown. Status is recomputed at read time against the injected clock.
The pages' data come from :mod:`okrsync.store.dashboard_pages`, read and rendered in a worker
thread.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import sqlalchemy
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from okrsync.engine.progress import display_progress, percent
from okrsync.store import dashboard_pages as pages
from okrsync.store.db import session_scope
from okrsync.store.tables import MeasurementRow

T = TypeVar("T")

HISTORY_LIMIT = 500
"""Measurements drawn per chart: the newest ones (a value is recorded only when it changes)."""

MAX_MARKERS = 40
"""Above this many points a chart draws the line and marks only the latest value."""

HEADROOM = 0.1
"""Share of the start-to-target span drawn beyond each end; values further out are clipped."""

DASH = "\u2013"  # en dash, for ranges

PACED_KINDS = frozenset({"increase", "decrease"})
PROVENANCE_FIELDS = ("connection", "query", "run_id", "fetched_at", "digest")

STATUS_LABEL = {
    "on_track": ("On track", "✓"),
    "at_risk": ("At risk", "!"),
    "off_track": ("Off track", "✕"),
    "no_data": ("No data", "\u2013"),
}

Sample = tuple[datetime, Decimal]


# --------------------------------------------------------------------------- burn-up geometry


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
    plot: Plot = field(default_factory=Plot)


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
            label = f"{_number(value, chart.unit)} on {at:%Y-%m-%d %H:%M} UTC"
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


def _chart_summary(chart: BurnupChart, samples: Sequence[Sample]) -> str:
    latest = f"latest {_number(samples[-1][1], chart.unit)}" if samples else "no values yet"
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
        f"{_day(cycle_start)}</text>"
    )
    out.append(
        f'<text class="tick" x="{_n(edges[1][0])}" y="{label_y}" text-anchor="end">'
        f"{_day(cycle_end)}</text>"
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


# --------------------------------------------------------------------------- formatting


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: Decimal | None, unit: str | None = None) -> str:
    """``1234.5`` → ``1,234.5``; at most two decimals; the unit after (``%`` without a space)."""
    if value is None:
        return "—"
    if value.is_finite():
        try:
            with localcontext() as ctx:
                ctx.prec = 60
                text = f"{value.quantize(Decimal('0.01')):,.2f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
        except InvalidOperation:
            text = f"{value:.6g}"
    else:
        text = str(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _percent(progress: Decimal | None) -> str:
    if progress is None:
        return "—"
    return f"{percent(progress).normalize():f}%"


def _bar_width(progress: Decimal | None) -> str:
    if progress is None:
        return "0"
    return f"{float(display_progress(progress)) * 100:.1f}"


def _when(at: datetime | None) -> str:
    return "never" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _iso_when(raw: object) -> str:
    try:
        return _when(datetime.fromisoformat(str(raw)))
    except ValueError:
        return str(raw)


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = (now - at).total_seconds()
    if seconds < 0:
        return _when(at)
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {name} ago"
    return "just now"


def _cycle_dates(cycle: pages.Cycle | None) -> str:
    if cycle is None:
        return ""
    if cycle.start.year == cycle.end.year:
        return f"{_day(cycle.start)} {DASH} {_day(cycle.end)} {cycle.end.year}"
    return f"{_day(cycle.start)} {cycle.start.year} {DASH} {_day(cycle.end)} {cycle.end.year}"


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"


# --------------------------------------------------------------------------- data

KeyResultPanel = pages.KeyResultDetail

PAGE_SIZE = 25
"""Objectives per overview page unless ``limit`` asks for another number (up to ``MAX_LIMIT``)."""

KR_PAGE_SIZE = 20
"""Key results (each with its chart) per objective page unless ``limit`` says otherwise."""


class BadQuery(ValueError):
    """A query parameter the dashboard cannot use; answered 400 with the reason."""


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise BadQuery(f"“{name}” must be a whole number from 1, got “{raw}”.")
    return int(raw)


def _filters(request: Request) -> pages.Filters:
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in STATUS_LABEL:
        raise BadQuery(f"There is no status “{status}”; use one of {', '.join(STATUS_LABEL)}.")
    search = (params.get("q") or "").strip()[:200] or None
    return pages.Filters(
        cycle=params.get("cycle") or None,
        owner=params.get("owner") or None,
        status=status,
        search=search,
        page=_int_param(request, "page", 1),
        limit=min(_int_param(request, "limit", PAGE_SIZE), pages.MAX_LIMIT),
    )


def _read(engine: sqlalchemy.Engine, read: Callable[[Session], T]) -> T | None:
    """``read`` in one transaction; ``None`` when the store has no schema yet."""
    try:
        with session_scope(engine) as session:
            return read(session)
    except DBAPIError:
        if not sqlalchemy.inspect(engine).has_table("objectives"):
            return None
        raise


# --------------------------------------------------------------------------- pages


def dashboard_routes(engine: sqlalchemy.Engine, clock: Callable[[], datetime]) -> list[BaseRoute]:
    """``/`` (one cycle's objectives, filtered and paginated) and ``/objectives/{id}`` (one
    objective's key results with their burn-up charts), read-only.

    Each page is read with a fixed number of SQL statements (see
    :mod:`okrsync.store.dashboard_pages`) and built in a worker thread, so neither the store nor
    the HTML holds the event loop.
    """

    def index_page(request: Request) -> HTMLResponse:
        now = clock()
        base = _base(request)
        try:
            filters = _filters(request)
        except BadQuery as exc:
            return _message_page("Bad request", "Bad request", str(exc), base, now, 400)
        view = _read(engine, lambda s: pages.cycle_page(s, now, filters))
        if view is None or not view.cycles:
            return _empty_page(base, now)
        if view.cycle is None:
            message = f"There is no cycle “{filters.cycle}” with objectives."
            return _message_page("Not found", "Not found", message, base, now, 404)
        return _overview(view, filters, base, now)

    def objective_page(request: Request) -> HTMLResponse:
        now = clock()
        base = _base(request)
        objective_id = request.path_params["objective_id"]
        try:
            page = _int_param(request, "page", 1)
            limit = min(_int_param(request, "limit", KR_PAGE_SIZE), pages.MAX_LIMIT)
        except BadQuery as exc:
            return _message_page("Bad request", "Bad request", str(exc), base, now, 400)
        found = _read(
            engine,
            lambda s: pages.objective_page(s, now, objective_id, page, limit, HISTORY_LIMIT),
        )
        if found is None:
            message = f"There is no objective “{objective_id}”."
            return _message_page("Not found", "Not found", message, base, now, 404)
        return _objective(found, base, now)

    async def index(request: Request) -> HTMLResponse:
        return await run_in_threadpool(index_page, request)

    async def objective(request: Request) -> HTMLResponse:
        return await run_in_threadpool(objective_page, request)

    return [
        Route("/", index, methods=["GET", "HEAD"], name="dashboard"),
        Route(
            "/objectives/{objective_id}",
            objective,
            methods=["GET", "HEAD"],
            name="dashboard_objective",
        ),
    ]


def _base(request: Request) -> str:
    root: Any = request.scope.get("root_path", "")
    return str(root).rstrip("/")


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


CSS = """
:root{--bg:#f5f6f8;--card:#fff;--text:#1c2128;--muted:#5b6570;--line:#d9dee4;--track:#e8ebef;
--accent:#2f5fd0;--ok:#1a7f37;--ok-bg:#dcf5e3;--risk:#8a5a00;--risk-bg:#fff1c2;--off:#c21f2b;
--off-bg:#ffe5e3;--none:#5b6570;--none-bg:#eceff2;--ok-fill:#2da44e;--risk-fill:#d4a72c;
--off-fill:#e5534b;--none-fill:#aeb6bf;--pace:#6e7781;--shadow:0 1px 2px rgba(20,30,40,.06),
0 2px 8px rgba(20,30,40,.04)}
@media (prefers-color-scheme:dark){:root{--bg:#0f1318;--card:#171c22;--text:#e3e7eb;
--muted:#9aa5b1;--line:#2c343d;--track:#262e37;--accent:#79a6ff;--ok:#56d364;--ok-bg:#12361d;
--risk:#e3b341;--risk-bg:#3a2d0b;--off:#ff7b72;--off-bg:#42181a;--none:#9aa5b1;--none-bg:#262e37;
--ok-fill:#3fb950;--risk-fill:#d29922;--off-fill:#f85149;--none-fill:#5b6570;--pace:#9aa5b1;
--shadow:none}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);line-height:1.45;font:15px/1.45 system-ui,
-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:.86em}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
h1,h2{margin:0;line-height:1.25}h1{font-size:1.5rem}h2{font-size:1.15rem}
.wrap{max-width:1040px;margin:0 auto;padding:0 16px}
.top{background:var(--card);border-bottom:1px solid var(--line)}
.top-inner{display:flex;align-items:center;justify-content:space-between;gap:12px;
min-height:52px;flex-wrap:wrap}
.brand{font-weight:700;font-size:1.1rem;color:var(--text)}.logo{color:var(--accent)}
.asof,.muted{color:var(--muted)}.small{font-size:.85rem}
main.wrap{padding-top:20px;padding-bottom:24px;display:grid;gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px;
box-shadow:var(--shadow);min-width:0}
.cycles{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.cycles a{padding:4px 12px;border:1px solid var(--line);border-radius:999px;background:var(--card)}
.cycles a[aria-current]{background:var(--accent);border-color:var(--accent);color:var(--card);
font-weight:600}
.cycle-head{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:flex-end;gap:12px}
.cycle-head p{margin:4px 0 0}
.tick-key{display:inline-block;width:2px;height:12px;background:var(--text);opacity:.55;
vertical-align:-1px;margin-right:6px}
.summary{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:10px}
.summary li{display:flex;align-items:center;gap:4px}.count{font-weight:700}
.badge{display:inline-flex;align-items:center;gap:4px;padding:2px 9px;border-radius:999px;
font-size:.8rem;font-weight:600;white-space:nowrap;border:1px solid transparent}
.badge.s-on_track{color:var(--ok);background:var(--ok-bg)}
.badge.s-at_risk{color:var(--risk);background:var(--risk-bg)}
.badge.s-off_track{color:var(--off);background:var(--off-bg)}
.badge.s-no_data{color:var(--none);background:var(--none-bg)}
.badge.stale{color:var(--risk);border-color:var(--risk);background:transparent}
.bar{position:relative;height:10px;border-radius:999px;background:var(--track);overflow:visible}
.fill{display:block;height:100%;border-radius:999px;min-width:0}
.fill.s-on_track{background:var(--ok-fill)}.fill.s-at_risk{background:var(--risk-fill)}
.fill.s-off_track{background:var(--off-fill)}.fill.s-no_data{background:var(--none-fill)}
.pace-mark{position:absolute;top:-3px;bottom:-3px;width:2px;margin-left:-1px;border-radius:1px;
background:var(--text);opacity:.55}
.obj-head{display:flex;justify-content:space-between;align-items:flex-start;gap:12px;
margin-bottom:12px}
.obj-title{min-width:0}.obj-title h1,.obj-title h2{overflow-wrap:anywhere}
.obj-title p{margin:4px 0 0;font-size:.88rem}
.obj-score{display:flex;flex-direction:column;align-items:flex-end;gap:4px;flex:none}
.big{font-size:1.35rem;font-weight:700;font-variant-numeric:tabular-nums}
.krs{list-style:none;margin:14px 0 0;padding:0}
.kr{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,6fr) 16.5rem;gap:6px 18px;
align-items:center;padding:12px 0;border-top:1px solid var(--line)}
.kr-name{display:flex;flex-direction:column;min-width:0}
.kr-title{font-weight:600;overflow-wrap:anywhere}
.kr-numbers{display:flex;justify-content:space-between;gap:8px;margin-top:5px;font-size:.9rem;
font-variant-numeric:tabular-nums;flex-wrap:wrap}
.pct{font-weight:600}
.kr-badges{display:flex;flex-wrap:wrap;gap:6px;justify-content:flex-end}
.kr-prov{grid-column:1/-1}
.prov-box{margin-top:6px;font-size:.88rem}
.prov-box summary{cursor:pointer;color:var(--accent);width:max-content;max-width:100%}
.prov{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:4px 14px;margin:10px 0 0}
.prov dt{color:var(--muted)}.prov dd{margin:0;min-width:0;overflow-wrap:anywhere}
.prov.source{padding:10px 12px;margin-top:10px;border-left:3px solid var(--line);
background:var(--bg);border-radius:0 8px 8px 0}
.prov pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.digest{word-break:break-all}
.error{color:var(--off);margin:10px 0 0;overflow-wrap:anywhere}
.more{margin:10px 0 0;text-align:right;font-size:.9rem}
.alert{border:1px solid var(--risk);background:var(--risk-bg);border-radius:12px;padding:12px 16px;
overflow-wrap:anywhere}.alert ul{margin:6px 0 0;padding-left:18px}
.crumbs{font-size:.92rem}
.objs{list-style:none;margin:0;padding:0}
.obj-row{display:grid;grid-template-columns:minmax(0,6fr) minmax(0,4fr) 8.5rem;gap:8px 18px;
align-items:center;padding:14px 0;border-top:1px solid var(--line)}
.obj-row:first-child{border-top:0;padding-top:0}.obj-row:last-child{padding-bottom:0}
.obj-row h2{font-size:1.05rem;overflow-wrap:anywhere}
.kr-counts{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:6px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end}
.filters label{display:flex;flex-direction:column;gap:2px;min-width:0}
.filters input,.filters select,.filters button{font:inherit;padding:5px 9px;border-radius:8px;
border:1px solid var(--line);background:var(--card);color:var(--text);max-width:100%}
.filters button{background:var(--accent);border-color:var(--accent);color:var(--card);
font-weight:600;cursor:pointer}
.pager{display:flex;flex-wrap:wrap;gap:16px;align-items:center;justify-content:flex-end}
.detail-head p{margin:10px 0 0}
.kr-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:16px}
.kr-card-head{display:flex;justify-content:space-between;align-items:flex-start;gap:10px}
.kr-card-head h2{overflow-wrap:anywhere}.kr-card-head p{margin:4px 0 0}
.big-numbers{font-size:1rem;margin-top:10px}
.kr-card .kr-progress{margin-top:10px}
.chart{margin:10px 0 0}
.burnup{display:block;width:100%;height:auto;font-size:12px;font-family:inherit}
.burnup .grid{stroke:var(--line);stroke-width:1}
.burnup .axis{stroke:var(--muted);stroke-width:1}
.burnup .tick{fill:var(--muted)}
.burnup .pace{stroke:var(--pace);stroke-width:1.5;stroke-dasharray:6 5;fill:none}
.burnup .band{fill:var(--ok-bg);opacity:.7}
.burnup .today{stroke:var(--accent);stroke-width:1;stroke-dasharray:2 3}
.burnup .actual{stroke:var(--accent);stroke-width:2.5;fill:none;stroke-linejoin:round;
stroke-linecap:round}
.burnup .held{stroke:var(--accent);stroke-width:2;stroke-dasharray:2 4;opacity:.7}
.burnup .dot{fill:var(--card);stroke:var(--accent);stroke-width:2}
.burnup .empty{fill:var(--muted);font-size:14px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:.82rem;color:var(--muted);margin-top:6px}
.key{display:inline-block;width:18px;height:0;vertical-align:middle;margin-right:6px;
border-top:2.5px solid var(--accent)}
.key.pace{border-top:2px dashed var(--pace)}
.key.today{border-top:2px dotted var(--accent);width:12px}
.table-wrap{overflow-x:auto;margin-top:8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600}
.empty-state{max-width:640px}.empty-state pre{background:var(--bg);padding:12px 14px;
border-radius:8px;overflow-x:auto}
.foot{color:var(--muted);font-size:.8rem;padding-bottom:28px}
@media (max-width:720px){
.obj-row{grid-template-columns:minmax(0,1fr)}.obj-row .obj-score{flex-direction:row;
align-items:center;justify-content:space-between}
.kr{grid-template-columns:minmax(0,1fr)}
.kr-name{grid-row:1}.kr-badges{grid-row:2;justify-content:flex-start}
.kr-progress{grid-row:3}.kr-prov{grid-row:4}
h1{font-size:1.3rem}.card{padding:14px}
.kr-card-head{flex-direction:column}.kr-card-head .kr-badges{justify-content:flex-start}
}
@media (max-width:560px){
.burnup{font-size:19px}.burnup .actual{stroke-width:4}.burnup .pace{stroke-width:2.5}
.burnup .dot{r:5.5;stroke-width:3}.burnup .held,.burnup .today{stroke-width:2.5}
}
@media (max-width:420px){.obj-head{flex-direction:column}.obj-score{flex-direction:row;
align-items:center;align-self:stretch;justify-content:space-between}}
"""


def _sources(current: MeasurementRow) -> list[dict[str, Any]]:
    """Of each provenance entry only the fields the dashboard shows (never credentials)."""
    return [
        {k: source[k] for k in PROVENANCE_FIELDS if source.get(k) is not None}
        for source in current.provenance or []
    ]


def _status_label(status: str) -> tuple[str, str]:
    return STATUS_LABEL.get(status, (status.replace("_", " ").capitalize(), "•"))


def _query(base: str, **params: object) -> str:
    """``base/?…`` with the parameters that are set (page 1 is left out), in the order given."""
    kept = {
        k: str(v) for k, v in params.items() if v is not None and v != "" and (k, v) != ("page", 1)
    }
    return f"{base}/?{urlencode(kept)}" if kept else f"{base}/"


TEMPLATES = Environment(
    loader=PackageLoader("okrsync.api", "templates"),
    autoescape=select_autoescape(("html",), default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
"""The pages' templates (``okrsync/api/templates``); every value is escaped unless it is Markup."""
TEMPLATES.filters["urlquote"] = lambda text: quote(str(text), safe="")
TEMPLATES.globals.update(
    when=_when,
    iso_when=_iso_when,
    ago=_ago,
    number=_number,
    percent=_percent,
    bar_width=_bar_width,
    cycle_dates=_cycle_dates,
    status_label=_status_label,
    sources=_sources,
    query=_query,
    statuses=tuple(STATUS_LABEL),
    css=Markup(CSS),  # noqa: S704 - a constant of this module
)


def _render(
    template: str, title: str, base: str, now: datetime, status_code: int = 200, **context: Any
) -> HTMLResponse:
    document = TEMPLATES.get_template(template).render(title=title, base=base, now=now, **context)
    return HTMLResponse(document, status_code=status_code, headers=SECURITY_HEADERS)


def _empty_page(base: str, now: datetime) -> HTMLResponse:
    return _render("message.html", "okrsync", base, now, empty=True)


def _message_page(
    title: str, heading: str, message: str, base: str, now: datetime, status_code: int
) -> HTMLResponse:
    return _render(
        "message.html",
        f"{title} · okrsync",
        base,
        now,
        status_code,
        empty=False,
        heading=heading,
        message=message,
    )


@dataclass(frozen=True)
class Pager:
    shown: str
    prev: str | None
    next: str | None


def _overview_pager(view: pages.CyclePage, filters: pages.Filters, base: str) -> Pager:
    assert view.cycle is not None
    limit = max(1, min(filters.limit, pages.MAX_LIMIT))
    last = max(1, -(-view.total // limit))
    page = max(filters.page, 1)
    first = (page - 1) * limit
    shown = f"{first + 1:,}{DASH}{first + len(view.objectives):,}" if view.objectives else "none"

    def link(to: int) -> str:
        return _query(
            base,
            cycle=view.cycle.id if view.cycle else None,
            owner=filters.owner,
            status=filters.status,
            q=filters.search,
            limit=None if limit == PAGE_SIZE else limit,
            page=to,
        )

    return Pager(
        shown,
        link(min(page - 1, last)) if page > 1 else None,
        link(page + 1) if page < last else None,
    )


def _overview(
    view: pages.CyclePage, filters: pages.Filters, base: str, now: datetime
) -> HTMLResponse:
    assert view.cycle is not None
    return _render(
        "overview.html",
        f"{view.cycle.id} · okrsync",
        base,
        now,
        view=view,
        filters=filters,
        pager=_overview_pager(view, filters, base),
        page_size=PAGE_SIZE,
    )


@dataclass(frozen=True)
class Card:
    """One key result on its objective's page, with its chart drawn."""

    panel: KeyResultPanel
    chart: Markup
    pace: Decimal | None
    reference: str


def _objective(found: pages.ObjectivePage, base: str, now: datetime) -> HTMLResponse:
    objective, cycle = found.objective, found.cycle
    cards = []
    for panel in found.key_results:
        kr = panel.view
        chart = burnup_svg(
            BurnupChart(
                title=kr.title,
                kind=kr.kind,
                unit=kr.unit,
                cycle_start=cycle.start,
                cycle_end=cycle.end,
                start=kr.start,
                target=kr.target,
                low=panel.row.low,
                high=panel.row.high,
                samples=panel.samples,
                now=now,
            )
        )
        paced = kr.kind in PACED_KINDS
        cards.append(
            Card(
                panel,
                Markup(chart),  # noqa: S704 - built by burnup_svg, which escapes what it prints
                objective.elapsed if paced else None,
                "expected pace" if paced else "target",
            )
        )
    pager = None
    if found.total > found.limit:
        here = f"{base}/objectives/{quote(objective.id, safe='')}"
        last = max(1, -(-found.total // found.limit))
        limit = "" if found.limit == KR_PAGE_SIZE else f"&limit={found.limit}"
        first = (found.page - 1) * found.limit
        pager = Pager(
            f"{first + 1:,}{DASH}{first + len(cards):,}",
            f"{here}?page={min(found.page - 1, last)}{limit}" if found.page > 1 else None,
            f"{here}?page={found.page + 1}{limit}" if found.page < last else None,
        )
    return _render(
        "objective.html",
        f"{objective.title} · okrsync",
        base,
        now,
        found=found,
        cards=cards,
        pager=pager,
    )
