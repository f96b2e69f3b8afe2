"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job).

Ready means: the store answers a trivial query, and the scheduler loop has recorded a heartbeat
recently (``OKRSYNC_READY_HEARTBEAT_SECONDS``; the loop wakes at least every five minutes). Each
connection's health row is reported too, but a failing vendor does not make the process unready:
restarting or unrouting okrsync cannot fix a vendor outage, and the other connections still work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from okrsync.api.context import ApiContext
from okrsync.api.offload import in_thread
from okrsync.store import views
from okrsync.store.db import session_scope

log = structlog.get_logger()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def check_store(ctx: ApiContext) -> dict[str, Any]:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness_store_unreachable", error=ctx.redactor.redact(str(exc)))
        return {"ok": False, "error": ctx.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]}
    return {"ok": True}


def check_scheduler(ctx: ApiContext, now: datetime) -> dict[str, Any]:
    daemon = ctx.daemon
    if daemon is None:
        return {"ok": False, "error": "the scheduler is not running in this process"}
    last = daemon.last_loop_at
    if last is None:
        return {"ok": False, "error": "the scheduler has not started yet", "last_loop_at": None}
    age = (now - last).total_seconds()
    limit = ctx.settings.ready_heartbeat_seconds
    answer: dict[str, Any] = {
        "ok": age <= limit,
        "last_loop_at": _iso(last),
        "heartbeat_age_seconds": round(age, 3),
        "lag_seconds": round(daemon.scheduler_lag_seconds, 3),
    }
    if age > limit:
        answer["error"] = f"no scheduler heartbeat for {age:.0f} s (limit {limit:.0f} s)"
    return answer


def connection_states(ctx: ApiContext) -> list[dict[str, Any]]:
    with session_scope(ctx.engine) as session:
        rows = views.connections_view(session)
    known = {row.name for row in rows}
    states = [
        {
            "name": row.name,
            "type": row.type,
            "status": row.status,
            "consecutive_failures": row.consecutive_failures,
            "paused_until": _iso(row.paused_until),
            "last_error": ctx.redactor.redact(row.last_error) if row.last_error else None,
        }
        for row in rows
        if row.name in ctx.config.connections
    ]
    for name in sorted(set(ctx.config.connections) - known):
        states.append(
            {
                "name": name,
                "type": ctx.config.connection_types[name],
                "status": "unknown",
                "consecutive_failures": 0,
                "paused_until": None,
                "last_error": None,
            }
        )
    return states


def _store_checks(ctx: ApiContext) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The store's answer and the connections' health rows: run in a worker thread, as a store
    that hangs must not hold the loop (and ``/healthz`` with it)."""
    store = check_store(ctx)
    return store, connection_states(ctx) if store["ok"] else []


def health_routes(ctx: ApiContext) -> list[BaseRoute]:
    async def healthz(request: Request) -> JSONResponse:
        # no store work: the process answers while a list call, a scrape or a pass holds it
        return JSONResponse({"status": "ok", "instance": ctx.settings.instance_id})

    async def readyz(request: Request) -> JSONResponse:
        now = ctx.clock()
        store, connections = await in_thread(_store_checks, ctx)
        scheduler = check_scheduler(ctx, now)
        ready = bool(store["ok"] and scheduler["ok"])
        body = {
            "status": "ready" if ready else "not_ready",
            "checks": {"store": store, "scheduler": scheduler},
            "connections": connections,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
