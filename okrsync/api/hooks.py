"""Inbound webhooks: ``POST /hooks/{connection}`` re-syncs the metrics read from that connection
and refreshes the work items listed from it (:meth:`okrsync.engine.work_sync.WorkSync.request`).

The connection's connector checks the signature: its ``verify_webhook`` hook, okrsync's own
scheme when it has none (:mod:`okrsync.sdk.webhooks`); a hook that raises refuses the request.
The secret is kept by reference like
every other secret: ``OKRSYNC_HOOK_SECRET_<CONNECTION>`` (the connection name upper-cased, every
character other than a letter or digit turned into ``_``) from the environment, else the file of
that name in ``OKRSYNC_SECRETS_DIR`` (``/run/secrets``), else the connection's own
``webhook_secret`` field when its type has one (Linear). A connection without a secret accepts no
webhooks (404), so nothing unsigned can ever trigger work.

Vendors send bursts (one issue edit → several events), so events are throttled on both edges
(:class:`Debouncer`, window ``OKRSYNC_HOOK_DEBOUNCE_SECONDS``, 2 s): an event when nothing ran
within the last window runs at once, so an isolated event costs no wait; the events that arrive
within the window after a run are collected and run once, together, when that window ends (and
that run opens the next window). A burst costs at most one run per window plus one. Bodies are
never logged, and are read only for a connection that has a secret, as a stream cut at
``MAX_HOOK_BODY`` before any signature is computed (:func:`okrsync.api.bodies.read_body`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync.api.bodies import BadBody, read_body
from okrsync.api.context import ApiContext, RunRequester, error_response
from okrsync.config import Config
from okrsync.plugins import load_registry
from okrsync.sdk.connector import Connector
from okrsync.sdk.webhooks import WebhookRequest, WebhookVerifier, verify_okrsync_webhook

log = structlog.get_logger()

MAX_HOOK_BODY = 1024 * 1024
ENV_PREFIX = "OKRSYNC_HOOK_SECRET_"


def secret_variable(connection: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", connection).upper()


def hook_secrets(
    connections: Mapping[str, object], secrets_dir: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each connection's webhook secret, for the connections that have one."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name in connections:
        variable = secret_variable(name)
        value = env.get(variable)
        if value is None:
            path = secrets_dir / variable
            try:
                value = path.read_text().strip() if path.is_file() else None
            except OSError:
                value = None
        if value is None:  # else the connection's own field (Linear's webhook_secret)
            field = getattr(connections[name], "webhook_secret", None)
            value = field.get_secret_value() if isinstance(field, SecretStr) else None
        if value:
            found[name] = value
    return found


def dependent_metrics(config: Config, connection: str) -> set[str]:
    """Metrics read from ``connection`` that some key result uses."""
    used = {name for kr in config.key_results() for name in kr.metric_names()}
    return {name for name in used if config.metrics[name].connection == connection}


class Debouncer:
    """Leading- and trailing-edge throttle of metric names, ``window`` seconds wide.

    ``add`` when nothing fired within the last ``window`` seconds fires at once (the leading
    edge). Otherwise the names are collected and fired together, once, when ``window`` seconds
    have passed since the last fire (the trailing edge), and that fire starts the next window.
    Times are the running loop's clock; the trailing fire is a ``call_at`` on that loop.
    """

    def __init__(self, window: float, fire: Callable[[set[str]], None]) -> None:
        self.window = window
        self.fire = fire
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._last_fire: float | None = None
        self.fired = 0

    def add(self, metrics: set[str]) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:  # a trailing fire is already due: join it
            self._pending |= metrics
            return
        now = loop.time()
        if self._last_fire is None or now - self._last_fire >= self.window:
            self._emit(set(metrics), now)
            return
        self._pending |= metrics
        self._timer = loop.call_at(self._last_fire + self.window, self._flush)

    def _flush(self) -> None:
        pending, self._pending, self._timer = self._pending, set(), None
        if pending:
            self._emit(pending, asyncio.get_running_loop().time())

    def _emit(self, metrics: set[str], now: float) -> None:
        if not metrics:
            return
        self._last_fire = now
        self.fired += 1
        self.fire(metrics)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._pending = None, set()


def _requester_fire(request_run: RunRequester) -> Callable[[set[str]], None]:
    def fire(metrics: set[str]) -> None:
        log.info("webhook_sync_requested", metrics=sorted(metrics))
        future = request_run(metrics=metrics, trigger="webhook")
        future.add_done_callback(_quiet)

    return fire


def _quiet(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome so a failed run is not reported as 'never retrieved' (it is logged)."""
    if not future.cancelled():
        future.exception()


def verifier_for(connector: Connector | None) -> WebhookVerifier:
    """The connector's ``verify_webhook`` hook (okrsync's own scheme for an unknown type)."""
    return connector.verify_webhook if connector is not None else verify_okrsync_webhook


def webhook_request(request: Request, body: bytes, received_at: float) -> WebhookRequest:
    """What a verifier sees of ``request``: method, URL as received, headers, raw body, time."""
    return WebhookRequest(
        method=request.method,
        url=str(request.url),
        headers=httpx.Headers(request.headers.raw),
        body=body,
        received_at=received_at,
    )


def verify(verifier: WebhookVerifier, secret: str, request: WebhookRequest) -> bool:
    """Whether the hook accepts ``request``: only a plain ``True`` does; a hook that raises
    refuses it (logged by the exception's type only, never its text, which may quote the body)."""
    try:
        return verifier(request, secret) is True
    except Exception as exc:  # a plugin's bug must not turn into a 500 or an accepted webhook
        log.warning("webhook_verifier_failed", error=type(exc).__name__)
        return False


def hook_routes(
    ctx: ApiContext, *, wall_clock: Callable[[], float] = time.time
) -> tuple[list[BaseRoute], Debouncer]:
    secrets = hook_secrets(ctx.config.connections, ctx.settings.secrets_dir)
    connectors: Mapping[str, Connector] = (
        ctx.connections.connectors if ctx.connections is not None else load_registry().connectors
    )
    ctx.redactor.add(secrets.values())
    debouncer = Debouncer(ctx.settings.hook_debounce_seconds, _requester_fire(ctx.request_run))

    async def receive(request: Request) -> Response:
        name = request.path_params["connection"]
        if name not in ctx.config.connections:
            return error_response(404, "unknown connection", name)
        secret = secrets.get(name)
        if secret is None:
            return error_response(
                404,
                "webhooks are not enabled for this connection",
                f"set {secret_variable(name)} to the webhook's secret",
            )
        try:  # only now that a secret exists; cut at the limit, before any signature work
            body = await read_body(request, MAX_HOOK_BODY)
        except BadBody as refused:
            return refused.response()
        kind = ctx.config.connection_types[name]
        inbound = webhook_request(request, body, wall_clock())
        if not verify(verifier_for(connectors.get(kind)), secret, inbound):
            log.warning("webhook_rejected", connection=name, type=kind, reason="bad_signature")
            return error_response(401, "invalid signature", None)
        metrics = dependent_metrics(ctx.config, name)
        log.info("webhook_received", connection=name, type=kind, metrics=len(metrics))
        if metrics:
            debouncer.add(metrics)
        if ctx.work is not None:  # the linked work read from this tracker, within seconds
            ctx.work.request(name)
        return JSONResponse(
            {"status": "accepted", "connection": name, "metrics": sorted(metrics)},
            status_code=202,
        )

    return [Route("/hooks/{connection}", receive, methods=["POST"])], debouncer
