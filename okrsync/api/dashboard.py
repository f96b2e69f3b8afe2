"""The dashboard: objectives, key results and burn-up charts as server-rendered HTML.

There is no front-end build and no JavaScript. Pages are Jinja2 templates (``templates/``, every
value autoescaped, values written by :mod:`okrsync.api.formatting`) with one inline stylesheet;
each burn-up chart is inline SVG drawn by :mod:`okrsync.api.charts`, which escapes what it prints
and is the only markup handed to the templates as is. Everything shown comes from user config or
vendor answers; of a measurement's provenance only the connection, query, run, fetch time and
answer digest are shown. Status is recomputed at read time against the injected clock. The
pages' data come from :mod:`okrsync.store.dashboard_pages`, read and rendered in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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

from okrsync.api import formatting
from okrsync.api.charts import PACED_KINDS, BurnupChart, burnup_svg
from okrsync.api.viewer import Viewer, ViewerOf
from okrsync.api.work_display import state_label, web_url
from okrsync.store import dashboard_pages as pages
from okrsync.store.db import session_scope
from okrsync.store.tables import MeasurementRow

T = TypeVar("T")

HISTORY_LIMIT = 500
"""Measurements drawn per chart: the newest ones (a value is recorded only when it changes)."""

PROVENANCE_FIELDS = ("connection", "query", "run_id", "fetched_at", "digest")

STATUS_LABEL = {
    "on_track": ("On track", "✓"),
    "at_risk": ("At risk", "!"),
    "off_track": ("Off track", "✕"),
    "no_data": ("No data", "\u2013"),
}


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


def dashboard_routes(
    engine: sqlalchemy.Engine, clock: Callable[[], datetime], viewer_of: ViewerOf | None = None
) -> list[BaseRoute]:
    """``/`` (one cycle's objectives, filtered and paginated) and ``/objectives/{id}`` (one
    objective's key results with their burn-up charts), read-only.

    Each page is read with a fixed number of SQL statements (see
    :mod:`okrsync.store.dashboard_pages`) and built in a worker thread, so neither the store nor
    the HTML holds the event loop. With ``viewer_of`` (sign-in), each page shows who is looking,
    a logout button, and check-in forms where they may check in.
    """

    def index_page(request: Request) -> HTMLResponse:
        now = clock()
        base = _base(request)
        viewer = None if viewer_of is None else viewer_of(request)
        try:
            filters = _filters(request)
        except BadQuery as exc:
            return _message_page("Bad request", "Bad request", str(exc), base, now, 400, viewer)
        view = _read(engine, lambda s: pages.cycle_page(s, now, filters))
        if view is None or not view.cycles:
            return _empty_page(base, now, viewer)
        if view.cycle is None:
            message = f"There is no cycle “{filters.cycle}” with objectives."
            return _message_page("Not found", "Not found", message, base, now, 404, viewer)
        return _overview(view, filters, base, now, viewer)

    def objective_page(request: Request) -> HTMLResponse:
        now = clock()
        base = _base(request)
        viewer = None if viewer_of is None else viewer_of(request)
        objective_id = request.path_params["objective_id"]
        try:
            page = _int_param(request, "page", 1)
            limit = min(_int_param(request, "limit", KR_PAGE_SIZE), pages.MAX_LIMIT)
        except BadQuery as exc:
            return _message_page("Bad request", "Bad request", str(exc), base, now, 400, viewer)
        found = _read(
            engine,
            lambda s: pages.objective_page(s, now, objective_id, page, limit, HISTORY_LIMIT),
        )
        if found is None:
            message = f"There is no objective “{objective_id}”."
            return _message_page("Not found", "Not found", message, base, now, 404, viewer)
        return _objective(found, base, now, viewer)

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
.who{display:flex;align-items:center;gap:10px;margin:0}
.who button,.check-in button{font:inherit;padding:4px 12px;border-radius:8px;cursor:pointer;
border:1px solid var(--line);background:var(--card);color:var(--text)}
.flash{margin:0;padding:10px 14px;border-radius:12px;border:1px solid var(--ok);
background:var(--ok-bg);overflow-wrap:anywhere}.flash.failed{border-color:var(--off);
background:var(--off-bg)}
.check-in{display:flex;flex-wrap:wrap;gap:8px 10px;align-items:flex-end;margin-top:12px;
padding-top:12px;border-top:1px solid var(--line)}
.check-in label{display:flex;flex-direction:column;gap:2px;font-size:.85rem;color:var(--muted);
min-width:0}
.check-in input,.check-in select{font:inherit;padding:5px 9px;border-radius:8px;width:7rem;
border:1px solid var(--line);background:var(--card);color:var(--text);max-width:100%}
.check-in .note{flex:1 1 10rem}.check-in .note input{width:100%}
.check-in button{background:var(--accent);border-color:var(--accent);color:var(--card);
font-weight:600}
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
.burnup .done{fill:var(--ok-fill);stroke:var(--card);stroke-width:1}
.key.done{width:0;height:0;border-left:5px solid transparent;
border-right:5px solid transparent;border-top:8px solid var(--ok-fill)}
.work{margin-top:10px;font-size:.9rem}.work-line{margin:0}
.work-items{list-style:none;margin:6px 0 0;padding:0}
.work-items li{display:flex;gap:8px;align-items:baseline;padding:3px 0;
border-top:1px solid var(--line);min-width:0}
.work-items .w-title{overflow-wrap:anywhere;min-width:0}
.w-state{flex:none;font-size:.75rem;font-weight:600;padding:0 7px;border-radius:999px}
.w-state.w-done{color:var(--ok);background:var(--ok-bg)}
.w-state.w-in_progress{color:var(--risk);background:var(--risk-bg)}
.w-state.w-todo{color:var(--none);background:var(--none-bg)}
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
    when=formatting.when,
    iso_when=formatting.iso_when,
    ago=formatting.ago,
    number=formatting.number,
    percent=formatting.percent_text,
    bar_width=formatting.bar_width,
    cycle_dates=formatting.cycle_dates,
    status_label=_status_label,
    sources=_sources,
    query=_query,
    statuses=tuple(STATUS_LABEL),
    web_url=web_url,
    work_state=state_label,
    css=Markup(CSS),  # noqa: S704 - a constant of this module
)


def _headers(viewer: Viewer | None) -> dict[str, str]:
    """The security headers; a signed-in viewer's forms may also lead to the sign-in provider
    (logging out there)."""
    if viewer is None or not viewer.form_action:
        return SECURITY_HEADERS
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", " ".join(("form-action 'self'", *viewer.form_action))
    )
    return {**SECURITY_HEADERS, "Content-Security-Policy": policy}


def _render(
    template: str,
    title: str,
    base: str,
    now: datetime,
    status_code: int = 200,
    viewer: Viewer | None = None,
    **context: Any,
) -> HTMLResponse:
    document = TEMPLATES.get_template(template).render(
        title=title, base=base, now=now, viewer=viewer, **context
    )
    return HTMLResponse(document, status_code=status_code, headers=_headers(viewer))


def _empty_page(base: str, now: datetime, viewer: Viewer | None = None) -> HTMLResponse:
    return _render("message.html", "okrsync", base, now, viewer=viewer, empty=True)


def _message_page(
    title: str,
    heading: str,
    message: str,
    base: str,
    now: datetime,
    status_code: int,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    return _render(
        "message.html",
        f"{title} · okrsync",
        base,
        now,
        status_code,
        viewer,
        empty=False,
        heading=heading,
        message=message,
    )


def message_page(
    request: Request, now: datetime, status_code: int, heading: str, message: str
) -> HTMLResponse:
    """A page saying ``message`` (sign-in's answers), in the dashboard's look."""
    return _message_page(heading, heading, message, _base(request), now, status_code)


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
    shown = (
        f"{first + 1:,}{formatting.DASH}{first + len(view.objectives):,}"
        if view.objectives
        else "none"
    )

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
    view: pages.CyclePage,
    filters: pages.Filters,
    base: str,
    now: datetime,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    assert view.cycle is not None
    return _render(
        "overview.html",
        f"{view.cycle.id} · okrsync",
        base,
        now,
        viewer=viewer,
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


def _objective(
    found: pages.ObjectivePage, base: str, now: datetime, viewer: Viewer | None = None
) -> HTMLResponse:
    objective, cycle = found.objective, found.cycle
    cards = []
    for panel in found.key_results:
        kr = panel.view
        chart = burnup_svg(
            BurnupChart(
                title=kr.title,
                kind=kr.kind,
                unit=kr.unit,
                decimals=kr.decimals,
                cycle_start=cycle.start,
                cycle_end=cycle.end,
                start=kr.start,
                target=kr.target,
                low=panel.row.low,
                high=panel.row.high,
                samples=panel.samples,
                now=now,
                work_done=panel.work.done_marks if panel.work else (),
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
            f"{first + 1:,}{formatting.DASH}{first + len(cards):,}",
            f"{here}?page={min(found.page - 1, last)}{limit}" if found.page > 1 else None,
            f"{here}?page={found.page + 1}{limit}" if found.page < last else None,
        )
    return _render(
        "objective.html",
        f"{objective.title} · okrsync",
        base,
        now,
        viewer=viewer,
        found=found,
        cards=cards,
        pager=pager,
    )
