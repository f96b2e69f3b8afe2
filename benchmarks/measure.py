"""One benchmark size in one process: okrsync's refreshes, the naive baseline, freshness, idle.

Run as ``python -m benchmarks.measure --size N --out FILE`` (``benchmarks.run`` does this, one
process per size, so peak memory is each size's own). okrsync runs in the main thread and the
fakes in their own threads, so okrsync's CPU is the main thread's ``time.thread_time``; the
process's CPU (fakes included) is reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlmodel import col, func, select

from benchmarks.fakes import clear_logs, request_counts, request_paths, start_sandbox
from benchmarks.floor import floor_model
from benchmarks.naive import run_naive
from benchmarks.store_bench import fresh_store
from benchmarks.workload import SLACK_CHANNELS, Workload, generate
from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.hooks import dependent_metrics, secret_variable
from okrsync.api.server import HttpServer, bind
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon
from okrsync.logging import configure_logging
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sdk.webhooks import sign
from okrsync.settings import Settings

STORE_HELP = (
    "'sqlite' (a new file) or a PostgreSQL server URL such as "
    "postgresql+psycopg://postgres@127.0.0.1:5432/test (a new schema, dropped after)"
)


def store_name(store: str) -> str:
    """The store's backend, for the results (never the URL: it may carry a password)."""
    return "sqlite" if store == "sqlite" else "postgresql"


class Clocks:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.thread = time.thread_time()
        self.process = time.process_time()

    def since(self) -> dict[str, float]:
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_main_thread": time.thread_time() - self.thread,
            "cpu_process": time.process_time() - self.process,
        }


async def timed_refresh(
    app: App, sandbox: Any, label: str, profile: Path | None = None
) -> dict[str, Any]:
    clear_logs(sandbox)
    profiler = cProfile.Profile() if profile else None
    clocks = Clocks()
    if profiler:
        profiler.enable()
    report = await app.sync.run_once(trigger="benchmark")
    if profiler:
        profiler.disable()
        assert profile is not None
        profiler.dump_stats(str(profile))
    out: dict[str, Any] = dict(clocks.since())
    out.update(
        label=label,
        requests=request_counts(sandbox),
        queries=report.queries,
        changed=report.changed,
        errors=len(report.errors),
        error_sample=report.errors[:3],
        delivered=report.dispatch.delivered,
        delivery_failures=report.dispatch.failed,
    )
    return out


HOOK_CONNECTION = "salesforce"
HOOK_SECRET = "bench-hook-secret"


async def freshness(
    app: App, sandbox: Any, workload: Workload, state: Any, samples: int
) -> dict[str, Any]:
    """Through the real webhook hop: the daemon loop and the HTTP API run in this event loop (as
    ``okrsync run`` serves them, uvicorn on 127.0.0.1 port 0); each sample changes a value at the
    Salesforce fake, POSTs a signed event to ``/hooks/salesforce`` and times until the Slack
    fake's message shows the new value. The hook throttle keeps its default window; samples are
    spaced further apart than the window, so each is an isolated event (the leading edge)."""
    kr_id = next(
        k
        for k in workload.mirrored
        if workload.specs[workload.metric_of[k]]["connection"] == HOOK_CONNECTION
    )
    spec = workload.specs[workload.metric_of[kr_id]]
    sharing = [m for m, s in workload.specs.items() if s == spec]
    org = sandbox[HOOK_CONNECTION].app.app.state.org
    field, value = spec["soql"].split("GROUP BY ")[1].strip(), spec["group_value"]
    channel = SLACK_CHANNELS[workload.mirrored.index(kr_id) % len(SLACK_CHANNELS)]
    template = next(o for o in org.opportunities if o[field] == value)
    window = app.settings.hook_debounce_seconds
    delays: list[float] = []
    problems: list[str] = []
    pushed: list[int] = []
    in_order: list[float] = []
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-secrets-") as secrets:
        (Path(secrets) / secret_variable(HOOK_CONNECTION)).write_text(HOOK_SECRET)
        stop = asyncio.Event()
        daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
        ctx = ApiContext.from_app(app, daemon)
        ctx.settings = app.settings.model_copy(update={"secrets_dir": Path(secrets)})
        http = HttpServer(build_app(ctx), bind("127.0.0.1", 0))
        loop_task = asyncio.create_task(daemon.run(stop), name="scheduler")
        await http.start()
        host, port = http.address
        try:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                next_event = time.perf_counter()
                for i in range(samples):
                    await asyncio.sleep(max(0.0, next_event - time.perf_counter()))
                    close = template["CloseDate"]
                    today = datetime.now(UTC).date()
                    opportunity = {
                        **template,
                        "Id": f"006BENCH{i:010d}",
                        "CloseDate": today if not isinstance(close, str) else today.isoformat(),
                    }
                    previous = _slack_value(state, channel, kr_id)
                    outbox_before = _last_delivery_id(app)
                    body = json.dumps({"event": "opportunity.created", "id": opportunity["Id"]})
                    began = time.perf_counter()
                    org.opportunities.append(opportunity)  # the event at the vendor
                    stamp = str(int(time.time()))
                    answer = await client.post(
                        f"/hooks/{HOOK_CONNECTION}",
                        content=body.encode(),
                        headers={
                            "Content-Type": "application/json",
                            "X-Okrsync-Timestamp": stamp,
                            "X-Okrsync-Signature": sign(HOOK_SECRET, stamp, body.encode()),
                        },
                    )
                    if answer.status_code != 202:
                        raise RuntimeError(f"freshness: the webhook answered {answer.text}")
                    shown = previous
                    while shown == previous and time.perf_counter() - began <= 30:
                        await asyncio.sleep(0.005)
                        shown = _slack_value(state, channel, kr_id)
                    delays.append(time.perf_counter() - began)
                    in_order.append(round(delays[-1], 3))
                    stored = await _current(app, kr_id)
                    if shown == previous:
                        problems.append(f"sample {i}: Slack still shows {previous} after 30 s")
                    elif shown != stored:
                        problems.append(f"sample {i}: Slack shows {shown}, the store {stored}")
                    delivered, errors = await _settled_deliveries(app, outbox_before)
                    pushed.append(delivered)
                    problems.extend(errors)
                    # stay inside chat.update's 50 per minute, or the next sample measures Slack's
                    # 429 wait; and past the throttle window, so the next event is an isolated one
                    next_event = max(
                        time.perf_counter() + max(1.3, 1.25 * delivered),
                        began + window + 0.1,
                    )
        finally:
            await http.stop()
            stop.set()
            await loop_task
    if problems and len(problems) == len(delays):
        raise RuntimeError(f"freshness: {problems[:3]}")
    delays.sort()
    return {
        "samples": len(delays),
        "p50": statistics.median(delays),
        "p95": delays[max(0, round(0.95 * len(delays)) - 1)],
        "max": delays[-1],
        "path": "webhook POST /hooks/salesforce → daemon loop → Slack fake",
        "hook_window_seconds": window,
        "sharing_metrics": len(sharing),
        "metrics_per_event": len(dependent_metrics(app.config, HOOK_CONNECTION)),
        "delivery_errors": problems[:5],
        "delivery_error_count": len(problems),
        "delays_in_order": in_order,
        "delivered_per_run": pushed,
    }


def _last_delivery_id(app: App) -> int:
    from okrsync.store.db import session_scope
    from okrsync.store.tables import DeliveryRow

    with session_scope(app.engine) as session:
        return session.exec(select(func.max(DeliveryRow.id))).one() or 0


SETTLE_SECONDS = 30.0


async def _settled_deliveries(app: App, after: int) -> tuple[int, list[str]]:
    """Once every outbox row queued after row ``after`` was delivered, superseded or failed (a
    claimed row stays pending while its push is in flight): how many were delivered, and the
    errors of those that were not."""
    from okrsync.store.db import session_scope
    from okrsync.store.tables import DeliveryRow

    deadline = time.perf_counter() + SETTLE_SECONDS
    while True:
        with session_scope(app.engine) as session:
            rows = session.exec(select(DeliveryRow).where(col(DeliveryRow.id) > after)).all()
        untried = [r for r in rows if r.status == "pending" and r.last_error is None]
        if not untried or time.perf_counter() > deadline:
            delivered = sum(1 for r in rows if r.status == "done")
            errors = [f"delivery {r.id}: {r.last_error}" for r in rows if r.last_error]
            errors += [f"delivery {r.id}: not done after {SETTLE_SECONDS} s" for r in untried]
            return delivered, errors
        await asyncio.sleep(0.05)


async def _current(app: App, kr_id: str) -> Decimal | None:
    from okrsync.store import views
    from okrsync.store.db import session_scope

    with session_scope(app.engine) as session:
        row = views.key_result(session, kr_id)
        return None if row is None else row.value


def _slack_value(state: Any, channel: str, kr_id: str) -> Decimal | None:
    """The value the key result's living message shows (text: "Key result 7: 3.1% (48 of …")."""
    title = f"Key result {int(kr_id[2:])}: "
    for message in state.channel_messages(channel):
        if message.text.startswith(title):
            found = re.search(r"\(([0-9.,]+)", message.text)
            return None if found is None else Decimal(found.group(1).replace(",", ""))
    return None


async def idle(app: App, seconds: float) -> dict[str, Any]:
    """The daemon with every metric fresh: CPU between ticks."""
    stop = asyncio.Event()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    task = asyncio.create_task(daemon.run(stop))
    await asyncio.sleep(0.5)  # let it compute its first wake-up
    clocks = Clocks()
    await asyncio.sleep(seconds)
    out: dict[str, Any] = dict(clocks.since())
    stop.set()
    await task
    out["ticks"] = daemon.ticks
    out["cpu_share_main_thread"] = out["cpu_main_thread"] / out["seconds"]
    out["cpu_share_process"] = out["cpu_process"] / out["seconds"]
    return out


async def measure(
    size: int,
    latency: float,
    idle_seconds: float,
    fresh_samples: int,
    profile: Path | None,
    *,
    naive_baseline: bool = True,
    store: str = "sqlite",
) -> dict[str, Any]:
    """``store`` is ``sqlite`` (a new file) or a PostgreSQL server URL (a new schema there)."""
    registry = load_registry()
    redactor = Redactor()
    configure_logging(redactor, fmt="json", level="error")
    today = datetime.now(UTC).date()
    sandbox, environ, slack = start_sandbox(registry, latency)
    result: dict[str, Any] = {"size": size, "latency": latency, "store": store_name(store)}
    try:
        workload = generate(size, today)
        clocks = Clocks()
        config = load_config_text(
            workload.yaml, registry.connectors, filename="bench.yaml", environ=environ
        )
        result["config_load"] = clocks.since()
        with fresh_store(store) as url:
            settings = Settings(database_url=SecretStr(url))
            app = App.open(settings, config=config, registry=registry, redactor=redactor)
            try:
                clocks = Clocks()
                app.apply_definitions()
                result["apply_definitions"] = clocks.since()
                result.update(floor_model(workload, latency))  # bounds and floors
                result["distinct"] = workload.distinct
                result["mirrored"] = len(workload.mirrored)
                result["cold"] = await timed_refresh(app, sandbox, "cold", profile)
                result["cold"]["paths"] = {n: request_paths(sandbox, n) for n in ("slack", "ga4")}
                result["warm"] = await timed_refresh(
                    app, sandbox, "warm", profile.with_suffix(".warm.out") if profile else None
                )
                if fresh_samples:
                    result["freshness"] = await freshness(
                        app, sandbox, workload, slack, fresh_samples
                    )
                if idle_seconds:
                    result["idle"] = await idle(app, idle_seconds)
                clear_logs(sandbox)
                if not naive_baseline:
                    return result
                naive = await run_naive(workload, environ, today)
                result["naive"] = {
                    "seconds": naive.seconds,
                    "requests": request_counts(sandbox),
                    "errors": len(naive.errors),
                    "error_sample": naive.errors[:3],
                }
            finally:
                await app.aclose()
    finally:
        sandbox.stop()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--idle-seconds", type=float, default=0.0)
    parser.add_argument("--freshness-samples", type=int, default=10)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--store", default="sqlite", help=STORE_HELP)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            args.size,
            args.latency,
            args.idle_seconds,
            args.freshness_samples,
            args.profile,
            naive_baseline=not args.no_naive,
            store=args.store,
        )
    )
    if args.profile:
        stats = pstats.Stats(str(args.profile))
        result["profile_file"] = str(args.profile)
        del stats
    args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
