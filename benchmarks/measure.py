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

from pydantic import SecretStr

from benchmarks.fakes import clear_logs, request_counts, request_paths, start_sandbox
from benchmarks.floor import refresh_floor
from benchmarks.naive import run_naive
from benchmarks.workload import SLACK_CHANNELS, Workload, generate
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon
from okrsync.logging import configure_logging
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.settings import Settings


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


async def freshness(
    app: App, sandbox: Any, workload: Workload, state: Any, samples: int
) -> dict[str, Any]:
    """Change a value at the fake, run the metrics that read it (as a webhook handler would),
    time until the Slack fake's message shows it. No debounce is modelled."""
    kr_id = next(
        k
        for k in workload.mirrored
        if workload.specs[workload.metric_of[k]]["connection"] == "salesforce"
    )
    spec = workload.specs[workload.metric_of[kr_id]]
    sharing = [m for m, s in workload.specs.items() if s == spec]
    org = sandbox["salesforce"].app.app.state.org
    field, value = spec["soql"].split("GROUP BY ")[1].strip(), spec["group_value"]
    channel = SLACK_CHANNELS[workload.mirrored.index(kr_id) % len(SLACK_CHANNELS)]
    template = next(o for o in org.opportunities if o[field] == value)
    delays: list[float] = []
    problems: list[str] = []
    pushed: list[int] = []
    in_order: list[float] = []
    for i in range(samples):
        close = template["CloseDate"]
        today = datetime.now(UTC).date()
        opportunity = {
            **template,
            "Id": f"006BENCH{i:010d}",
            "CloseDate": today if not isinstance(close, str) else today.isoformat(),
        }
        previous = await _current(app, kr_id)
        began = time.perf_counter()
        org.opportunities.append(opportunity)  # the event at the vendor
        run = await app.sync.run_once(metrics=sharing, trigger="webhook")
        problems.extend(run.dispatch.errors)
        pushed.append(run.dispatch.delivered)
        expected = await _current(app, kr_id)
        if expected == previous:
            raise RuntimeError(f"freshness: the change at the fake did not move {kr_id}")
        while not _slack_shows(state, channel, kr_id, expected):
            if time.perf_counter() - began > 30:
                break
            await asyncio.sleep(0.005)
        delays.append(time.perf_counter() - began)
        in_order.append(round(delays[-1], 3))
        # stay inside chat.update's 50 per minute, or the next sample measures Slack's 429 wait
        await asyncio.sleep(max(1.3, 1.25 * run.dispatch.delivered))
    delays.sort()
    return {
        "samples": len(delays),
        "p50": statistics.median(delays),
        "p95": delays[max(0, round(0.95 * len(delays)) - 1)],
        "max": delays[-1],
        "sharing_metrics": len(sharing),
        "delivery_errors": problems[:5],
        "delivery_error_count": len(problems),
        "delays_in_order": in_order,
        "delivered_per_run": pushed,
    }


async def _current(app: App, kr_id: str) -> Decimal | None:
    from okrsync.store import views
    from okrsync.store.db import session_scope

    with session_scope(app.engine) as session:
        row = views.key_result(session, kr_id)
        return None if row is None else row.value


def _slack_shows(state: Any, channel: str, kr_id: str, value: Decimal | None) -> bool:
    """The key result's living message shows ``value`` (text: "Key result 7: 3.1% (48 of …")."""
    if value is None:
        return False
    title = f"Key result {int(kr_id[2:])}: "
    for message in state.channel_messages(channel):
        if message.text.startswith(title):
            found = re.search(r"\(([0-9.,]+)", message.text)
            return found is not None and Decimal(found.group(1).replace(",", "")) == value
    return False


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
) -> dict[str, Any]:
    registry = load_registry()
    redactor = Redactor()
    configure_logging(redactor, fmt="json", level="error")
    today = datetime.now(UTC).date()
    sandbox, environ, slack = start_sandbox(registry, latency)
    result: dict[str, Any] = {"size": size, "latency": latency}
    try:
        workload = generate(size, today)
        clocks = Clocks()
        config = load_config_text(
            workload.yaml, registry.connectors, filename="bench.yaml", environ=environ
        )
        result["config_load"] = clocks.since()
        with tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
            settings = Settings(database_url=SecretStr(f"sqlite:///{tmp}/store.db"))
            app = App.open(settings, config=config, registry=registry, redactor=redactor)
            try:
                clocks = Clocks()
                app.apply_definitions()
                result["apply_definitions"] = clocks.since()
                lower = workload.lower_bound()
                result["lower_bound"] = lower
                result["distinct"] = workload.distinct
                result["mirrored"] = len(workload.mirrored)
                result["cold"] = await timed_refresh(app, sandbox, "cold", profile)
                result["cold"]["paths"] = {n: request_paths(sandbox, n) for n in ("slack", "ga4")}
                result["warm"] = await timed_refresh(app, sandbox, "warm")
                channels = len(SLACK_CHANNELS)
                result["floor"] = {
                    "cold": refresh_floor(lower, latency, channels),
                    "warm": refresh_floor({**lower, "slack": 0}, latency, channels),
                    "cold_with_jira_pace": refresh_floor(lower, latency, channels, paced=True),
                }
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
    args = parser.parse_args()
    result = asyncio.run(
        measure(args.size, args.latency, args.idle_seconds, args.freshness_samples, args.profile)
    )
    if args.profile:
        stats = pstats.Stats(str(args.profile))
        result["profile_file"] = str(args.profile)
        del stats
    args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
