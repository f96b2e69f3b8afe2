"""Vendor requests of a closed cycle against an active one, under the real daemon.

``python -m benchmarks.closed_cycles`` serves the ``http_json`` fake on a loopback socket and
runs the daemon in-process on a SQLite store with a stepped clock: ``--size`` key results (50)
in 2026-Q4 (``close_after: 1d``, so it closes on 2027-01-02) and as many in 2027-Q1, each on a
metric asking its own question (``every 1m``). ``--ticks`` minutes (10) are run while Q4 is
``closing`` (values still update) and as many after it closed. Requests are counted at the fake
and told apart by the question's status (``won`` for Q4, ``lost`` for Q1). Writes
``closed_cycles.json`` and ``closed_cycles.md`` in ``--output`` (``benchmarks/``), with the load
average before and after; the prose is computed from the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from connectors.http_json import connector as http_json
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.logging import configure_logging
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings

CLOSES = datetime(2027, 1, 2, tzinfo=UTC)
STEP = timedelta(minutes=1)


def config_text(url: str, token: str, size: int) -> str:
    metrics, objectives = [], []
    for cycle, status in (("2026-Q4", "won"), ("2027-Q1", "lost")):
        krs = []
        for i in range(size):
            name = f"{status}_{i}"
            since = date(2026, 1, 1) + timedelta(days=i)
            metrics.append(
                f"  {name}: {{connection: api, request_path: /v1/deals/summary, "
                f"params: {{status: {status}, closed_after: '{since}'}}, json_path: $.count, "
                "schedule: every 1m}"
            )
            krs.append(
                f"      - {{id: {name}, title: {name}, metric: {name}, kind: increase, "
                "start: 0, target: 1000}"
            )
        objectives.append(
            f"  - id: o_{status}\n    title: {cycle}\n    cycle: {cycle}\n    key_results:\n"
            + "\n".join(krs)
        )
    return (
        "version: 1\n"
        f"connections:\n  api: {{type: http_json, url: '{url}', "
        f"auth: {{type: bearer, token: '{token}'}}}}\n"
        "cycles:\n"
        "  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31, close_after: 1d}\n"
        "  - {id: 2027-Q1, start: 2027-01-01, end: 2027-03-31}\n"
        "metrics:\n" + "\n".join(metrics) + "\nobjectives:\n" + "\n".join(objectives) + "\n"
    )


async def measure(size: int, ticks: int) -> dict[str, Any]:
    assert http_json.fake is not None
    registry = load_registry()
    with tempfile.TemporaryDirectory() as scratch, SandboxServer(http_json.fake()) as api:
        api.log.keep_all()
        now = CLOSES - ticks * STEP - timedelta(seconds=30)
        text = config_text(api.url, str(http_json.sandbox()["token"]), size)
        app = App.open(
            Settings(database_url=SecretStr(f"sqlite:///{Path(scratch) / 'store.db'}")),
            config=load_config_text(text, registry.connectors, today=now.date()),
            registry=registry,
            clock=lambda: now,
        )
        app.apply_definitions()
        daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))

        async def settle() -> None:
            """Until the daemon finished its pass at ``now`` and every run it started."""
            for _ in range(60_000):  # 5 minutes
                if daemon.last_pass_at == now and not daemon.fetching and not daemon._tasks:
                    return
                await asyncio.sleep(0.005)
            raise RuntimeError(f"the daemon did not settle at {now}")

        def counts() -> dict[str, int]:
            asked = [r.query for r in api.requests]
            return {
                "2026-Q4": sum("status=won" in q for q in asked),
                "2027-Q1": sum("status=lost" in q for q in asked),
            }

        phases: dict[str, dict[str, int]] = {}
        try:
            await settle()
            start = counts()
            for _ in range(ticks):  # Q4 closing, Q1 active
                now += STEP
                daemon._wake.set()
                await settle()
            middle = counts()
            phases["closing"] = {k: middle[k] - start[k] for k in middle}
            for _ in range(ticks):  # the first of these passes closes Q4
                now += STEP
                daemon._wake.set()
                await settle()
            end = counts()
            phases["closed"] = {k: end[k] - middle[k] for k in end}
            closed = sorted(daemon.closed_cycles)
        finally:
            stop.set()
            await stop_within(task, 30)
            await app.aclose()
    return {"size": size, "ticks": ticks, "closed": closed, "requests": phases}


def report(result: dict[str, Any]) -> str:
    closing, closed = result["requests"]["closing"], result["requests"]["closed"]
    size, ticks = result["size"], result["ticks"]
    bound = size * ticks
    return (
        "# Closed cycles: vendor requests\n\n"
        f"{size} key results in 2026-Q4 and {size} in 2027-Q1, each asking its own question of "
        f"the `http_json` fake every minute, {ticks} one-minute ticks per phase under the "
        "in-process daemon (SQLite, stepped clock). Load average "
        f"{result['load_before']} before, {result['load_after']} after.\n\n"
        "| phase | 2026-Q4 requests | 2027-Q1 requests |\n| --- | ---: | ---: |\n"
        f"| Q4 closing (grace period) | {closing['2026-Q4']} | {closing['2027-Q1']} |\n"
        f"| Q4 closed | {closed['2026-Q4']} | {closed['2027-Q1']} |\n\n"
        f"While closing, each cycle asked {closing['2026-Q4']} and {closing['2027-Q1']} "
        f"questions (one per key result per tick: {bound}). After the pass that closed "
        f"{', '.join(result['closed']) or 'no cycle'}, 2026-Q4 asked {closed['2026-Q4']} and "
        f"the active 2027-Q1 {closed['2027-Q1']}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    configure_logging(Redactor(), fmt="console", level="error")
    before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    result = asyncio.run(measure(args.size, args.ticks))
    result["load_before"] = before
    result["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "closed_cycles.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output / "closed_cycles.md").write_text(report(result))
    print(report(result))
    structlog.reset_defaults()


if __name__ == "__main__":
    main()
