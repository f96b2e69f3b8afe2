"""The sandbox fakes a benchmark talks to, with vendor latency injected and real limits kept."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from typing import Any

from benchmarks.workload import SLACK_CHANNELS, cycle_dates
from connectors.slack.fake import Channel, SlackState, default_state, slack_app
from okrsync.plugins import Registry
from okrsync.sandbox import Sandbox

VENDORS = ("jira", "salesforce", "hubspot", "ga4", "slack")


def slack_state() -> SlackState:
    state = default_state()
    for index, channel in enumerate(SLACK_CHANNELS):
        state.add_channel(Channel(channel, f"okr-bench-{index}"))
    return state


class VendorLatency:
    """Delays every HTTP request by ``delay`` seconds before the fake sees it.

    Stands in for ``Fault(kind=FaultKind.LATENCY, times=-1)``: that fault's pause swallows the
    replayed request body of POSTs (okrsync/sandbox/faults.py ``_pause`` reads from the replaying
    ``receive``), so the fake then waits forever for a body. Reported for a core fix.
    """

    def __init__(self, app: Any, delay: float) -> None:
        self.app = app
        self.delay = delay
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox/"):
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


def start_sandbox(registry: Registry, latency: float) -> tuple[Sandbox, dict[str, str], Any]:
    """Every vendor's fake on its own port, each request delayed by ``latency`` seconds."""
    apps: dict[str, Any] = {}
    credentials: dict[str, dict[str, str]] = {}
    state = slack_state()
    for name in VENDORS:
        connector = registry.connectors[name]
        assert connector.fake is not None
        app = slack_app(state) if name == "slack" else connector.fake()
        apps[name] = VendorLatency(app, latency) if latency > 0 else app
        credentials[name] = dict(connector.sandbox())
    sandbox = Sandbox(apps)
    for server in sandbox.servers.values():
        server.log.keep_all()  # the benchmarks count every request: no bound on their logs
    sandbox.start()
    environ: dict[str, str] = {}
    for name, url in sandbox.urls.items():
        environ[f"B_{name.upper()}_URL"] = url
        for key, value in credentials[name].items():
            environ[f"B_{name.upper()}_{key.upper()}"] = value
    return sandbox, environ, state


def clear_logs(sandbox: Sandbox) -> None:
    for server in sandbox.servers.values():
        server.log.clear()  # faults stay armed


def request_counts(sandbox: Sandbox) -> dict[str, int]:
    """Requests each fake received since its log was cleared; refuses a log that dropped any
    (a count read from a bounded log would be silently short)."""
    dropped = {name: s.log.dropped for name, s in sandbox.servers.items() if s.log.dropped}
    if dropped:
        raise RuntimeError(f"the fakes' request logs dropped records: {dropped}")
    return {name: server.log.received for name, server in sandbox.servers.items()}


def request_paths(sandbox: Sandbox, name: str) -> dict[str, int]:
    return dict(Counter(f"{r.method} {r.path}" for r in sandbox[name].requests))


def cycle_window(today: date) -> tuple[str, str]:
    start, end = cycle_dates(today)
    return start.isoformat(), end.isoformat()
