"""The HTTP application of one okrsync process: health, metrics, JSON API, dashboard, webhooks.

A FastAPI application: the JSON API is its router (:mod:`okrsync.api.v1`); health, metrics,
webhooks and the dashboard are plain Starlette routes beside it, outside the OpenAPI document.
Built from an :class:`~okrsync.api.context.ApiContext` (kept on ``app.state``, where the API's
routes find it), so ``okrsync run`` and the tests serve the same thing. Every error, including a
404 for an unknown path or a 405, is ``{error, detail}`` (:mod:`okrsync.api.errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from okrsync.api import errors, v1
from okrsync.api.bodies import BadBody
from okrsync.api.chat_check_ins import ChatCheckInRoutes
from okrsync.api.context import ApiContext
from okrsync.api.health import health_routes
from okrsync.api.hooks import hook_routes
from okrsync.api.metrics import metrics_routes
from okrsync.api.principal import gated
from okrsync.api.sign_in import oidc_sign_in

if TYPE_CHECKING:
    from okrsync.api.oidc import OidcSignIn

log = structlog.get_logger()


def dashboard(ctx: ApiContext, sign_in: OidcSignIn | None = None) -> list[BaseRoute]:
    try:
        from okrsync.api.dashboard import dashboard_routes
    except ModuleNotFoundError as exc:
        if exc.name != "okrsync.api.dashboard":
            raise
        log.warning("dashboard_missing", detail="okrsync.api.dashboard is not installed")
        return []
    from okrsync.api.cycle_pages import cycle_routes

    if sign_in is None:  # a token, a trusted proxy or public reads: else 401
        return [gated(r) for r in [*dashboard_routes(ctx.engine, ctx.clock), *cycle_routes(ctx)]]
    routes = [*dashboard_routes(ctx.engine, ctx.clock, sign_in.viewer), *cycle_routes(ctx)]
    return [sign_in.gated(r) for r in routes]


def build_app(ctx: ApiContext) -> FastAPI:
    hooks, debouncer = hook_routes(ctx)
    oidc = oidc_sign_in(ctx)  # None without OKRSYNC_OIDC_ISSUER
    chat = ChatCheckInRoutes(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            debouncer.cancel()
            await chat.aclose()

    app = FastAPI(
        title="okrsync",
        lifespan=lifespan,
        openapi_url=None,  # served by the router, from the committed generator
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            HTTPException: errors.http_error,
            RequestValidationError: errors.invalid_parameter(v1.PARAMETER_RULES),
            BadBody: errors.refused,
            Exception: errors.server_error,
        },
    )
    app.router.routes.extend([*health_routes(ctx), *metrics_routes(ctx)])
    app.include_router(v1.router)
    app.router.routes.extend(
        [*hooks, *chat.routes(), *dashboard(ctx, None if oidc is None else oidc[0])]
    )
    if oidc is not None:
        from okrsync.api.oidc import PageSessions

        app.router.routes.extend(oidc[1])
        app.add_middleware(PageSessions, **oidc[0].session_options())
    app.state.api_context = ctx
    app.state.debouncer = debouncer
    app.state.chat_check_ins = chat
    return app
