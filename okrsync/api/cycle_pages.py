"""The dashboard's cycles: ``/cycles`` lists every cycle (past ones with their final scores) and
``/cycles/{id}`` shows one cycle's report with burn-up charts. Read-only, like the rest of the
dashboard; read and rendered in a worker thread."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from okrsync.api.context import ApiContext
from okrsync.api.cycle_report import cycles_html, report_html
from okrsync.api.dashboard import SECURITY_HEADERS, _base
from okrsync.read_models.cycle_report import build_cycle_report
from okrsync.store.db import session_scope


def cycle_routes(ctx: ApiContext) -> list[BaseRoute]:
    config = ctx.config

    def index_page(request: Request) -> HTMLResponse:
        now = ctx.clock()
        newest_first = sorted(config.cycles.values(), key=lambda c: (c.start, c.id), reverse=True)
        with session_scope(ctx.engine) as session:
            reports = [build_cycle_report(session, config, c.id, now) for c in newest_first]
        return HTMLResponse(cycles_html(reports, _base(request)), headers=SECURITY_HEADERS)

    def report_page(request: Request) -> HTMLResponse:
        now = ctx.clock()
        cycle_id = request.path_params["cycle_id"]
        if cycle_id not in config.cycles:
            return HTMLResponse(
                "<!doctype html><title>Not found</title><p>There is no such cycle.</p>",
                status_code=404,
                headers=SECURITY_HEADERS,
            )
        with session_scope(ctx.engine) as session:
            report = build_cycle_report(session, config, cycle_id, now)
        page = report_html(report, now, back=f"{_base(request)}/cycles")
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    async def index(request: Request) -> HTMLResponse:
        return await run_in_threadpool(index_page, request)

    async def report(request: Request) -> HTMLResponse:
        return await run_in_threadpool(report_page, request)

    return [
        Route("/cycles", index, methods=["GET", "HEAD"], name="dashboard_cycles"),
        Route("/cycles/{cycle_id}", report, methods=["GET", "HEAD"], name="dashboard_cycle"),
    ]
