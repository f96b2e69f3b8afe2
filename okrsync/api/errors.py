"""Every error of the HTTP application answered as ``{error, detail}``.

The exception handlers :func:`okrsync.api.app.build_app` installs: Starlette's HTTP errors (an
unknown path, a 405), a refused request (:class:`BadInput`, a :class:`BadBody`), a query
parameter FastAPI's validation refused (a 400 saying which parameter and what it takes), and
anything unexpected (a 500 that names nothing internal).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from okrsync.api.bodies import BadBody
from okrsync.api.context import ApiContext, error_response

log = structlog.get_logger()

ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


class BadInput(BadBody):
    """A request refused with a 4xx (so is a :class:`BadBody`): the answer to send."""


def context_of(request: Request) -> ApiContext:
    """The :class:`ApiContext` :func:`okrsync.api.app.build_app` put on the application."""
    ctx = request.app.state.api_context
    assert isinstance(ctx, ApiContext)
    return ctx


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, None, dict(exc.headers or {}))


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadBody)
    detail = context_of(request).redactor.redact_value(exc.detail)
    return error_response(exc.status, exc.error, detail, exc.headers)


def invalid_parameter(rules: Mapping[str, str]) -> ExceptionHandler:
    """The handler of FastAPI's :class:`RequestValidationError`: a 400 for the first parameter
    refused, with ``rules[name]`` (what the parameter takes) as the detail."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        where, name = str(first["loc"][0]), str(first["loc"][-1])
        detail = rules.get(name, f"{name}: {first['msg']}")
        return error_response(400, f"invalid {where} parameter", detail)

    return handler


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("http_unhandled_error", path=request.url.path, error=type(exc).__name__)
    return error_response(500, "internal error", None)
