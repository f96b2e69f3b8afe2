"""The HTTP application of one okrsync process: health, metrics, JSON API, dashboard, webhooks.

Built from an :class:`~okrsync.api.context.ApiContext`, so ``okrsync run`` and the tests serve
the same thing. Every error, including a 404 for an unknown path or a 405, is ``{error, detail}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from okrsync.api.context import ApiContext, error_response
from okrsync.api.health import health_routes
from okrsync.api.hooks import hook_routes
from okrsync.api.metrics import metrics_routes
from okrsync.api.v1 import v1_routes

log = structlog.get_logger()


def dashboard(ctx: ApiContext) -> list[BaseRoute]:
    try:
        from okrsync.api.dashboard import dashboard_routes
    except ModuleNotFoundError as exc:
        if exc.name != "okrsync.api.dashboard":
            raise
        log.warning("dashboard_missing", detail="okrsync.api.dashboard is not installed")
        return []
    return list(dashboard_routes(ctx.engine, ctx.clock))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, None, dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("http_unhandled_error", path=request.url.path, error=type(exc).__name__)
    return error_response(500, "internal error", None)


def build_app(ctx: ApiContext) -> Starlette:
    hooks, debouncer = hook_routes(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            debouncer.cancel()

    routes = [
        *health_routes(ctx),
        *metrics_routes(ctx),
        *v1_routes(ctx),
        *hooks,
        *dashboard(ctx),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.debouncer = debouncer
    return app
