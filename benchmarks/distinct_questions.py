"""Distinct questions: every key result asks Jira its own JQL, okrsync beside a naive script.

``python -m benchmarks.distinct_questions`` generates ``--size`` key results (1,000), each read
by a count metric with a JQL of its own (a project and a 30-day ``created`` window), and serves
the sandbox Jira **in another process** (uvicorn) with ``--latency`` seconds (0.05) added to
every answer and Jira Cloud's documented burst limits enforced (100 requests a second per
endpoint for GET and POST, :mod:`connectors.jira.fake.limits`). Then:

* **okrsync**: the real code path of ``okrsync sync`` (config loaded, definitions applied to a
  SQLite store, one run of every metric, values recorded), timed from the run's start to its end;
* **naive**: :func:`benchmarks.naive.run_naive` on the same key results in a process of its own
  (nothing of okrsync imported), a plain httpx loop four requests at a time that waits out every
  429's ``Retry-After``; CPU seconds are each process's own.

Requests are counted at the fake (every request it received, 429s included). The floor is what
the vendor allows: ``requests / 100 per second`` (the documented burst limit of ``POST
/search/jql``) or, if slower, ``requests x latency / in-flight`` (okrsync's ``max_concurrency``
for okrsync, 4 for the naive script), plus one latency. ``--profile FILE`` writes a cProfile of
okrsync's run. Writes ``distinct_questions.json`` and ``distinct_questions.md`` in ``--output``
(``benchmarks/``); the prose of the markdown is computed from the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from benchmarks.naive import CONCURRENCY as NAIVE_CONCURRENCY
from benchmarks.naive import run_naive
from benchmarks.workload import KRS_PER_OBJECTIVE, Workload, cycle_dates
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.fake.limits import DOCUMENTED_BURST_RATES
from connectors.jira.models import JiraConnection

HERE = Path(__file__).resolve().parent
PROJECTS = ("OKR", "WEB", "API")
FIRST_DAY = date(2026, 5, 1)
WINDOW_DAYS = 30
STATS_PATH = "/_bench/stats"
RESET_PATH = "/_bench/reset"
SEARCH_RATE = DOCUMENTED_BURST_RATES["POST"]  # POST /rest/api/3/search/jql


def distinct_jql(index: int) -> str:
    """The ``index``-th question: one project and a 30-day window, never the same twice."""
    start = FIRST_DAY + timedelta(days=index // len(PROJECTS))
    end = start + timedelta(days=WINDOW_DAYS)
    project = PROJECTS[index % len(PROJECTS)]
    return f'project = {project} AND created >= "{start}" AND created <= "{end}"'


def workload(size: int, today: date) -> Workload:
    """``size`` key results, each reading a count metric with a JQL of its own."""
    start, end = cycle_dates(today)
    lines = [
        "version: 1",
        "defaults: {schedule: every 1h}",
        "connections:",
        "  jira:",
        "    type: jira",
        '    url: "${B_JIRA_URL}"',
        '    email: "${B_JIRA_EMAIL}"',
        '    api_token: "${B_JIRA_API_TOKEN}"',
        f'cycles:\n  - {{id: bench, start: "{start}", end: "{end}"}}',
        "metrics:",
    ]
    objectives = ["objectives:"]
    specs: dict[str, dict[str, Any]] = {}
    metric_of: dict[str, str] = {}
    for i in range(size):
        name = f"m{i:05d}"
        spec = {"connection": "jira", "jql": distinct_jql(i)}
        specs[name] = spec
        lines.append(f"  {name}: {json.dumps(spec)}")
        kr_id = f"kr{i:05d}"
        metric_of[kr_id] = name
        if i % KRS_PER_OBJECTIVE == 0:
            o = i // KRS_PER_OBJECTIVE
            objectives.append(
                f"  - {{id: o{o:04d}, title: Objective {o}, cycle: bench, owner: team{o % 50}, "
                "key_results: ["
            )
        kr: dict[str, Any] = {"id": kr_id, "title": f"Key result {i}", "metric": name}
        kr |= {"kind": "increase", "start": 0, "target": 1000}
        last = i % KRS_PER_OBJECTIVE == KRS_PER_OBJECTIVE - 1 or i == size - 1
        objectives.append(f"      {json.dumps(kr)}" + ("]}" if last else ","))
    text = "\n".join(lines + objectives) + "\n"
    distinct = len({s["jql"] for s in specs.values()})
    return Workload(size, text, specs, [], metric_of, {"jira": distinct})


# --- the fake, in its own process ---------------------------------------------------------------


class CountingJira:
    """The sandbox Jira plus ``GET /_bench/stats`` (what it received) and ``POST /_bench/reset``."""

    def __init__(self, latency: float) -> None:
        self.app = jira_app(latency=latency)
        self.fake = self.app.state.fake
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.cpu_at_reset = time.process_time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in (STATS_PATH, RESET_PATH):
            if path == RESET_PATH:
                self.requests.clear()
                self.statuses.clear()
                self.fake.rate_limited.clear()
                self.fake.peak_in_flight = 0
                self.cpu_at_reset = time.process_time()
            body = json.dumps(self.stats()).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        self.requests[f"{scope['method']} {path}"] += 1

        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.statuses[int(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": sum(self.requests.values()),
            "by_path": dict(self.requests),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "rate_limited": dict(self.fake.rate_limited),
            "peak_in_flight": self.fake.peak_in_flight,
            "cpu_seconds": time.process_time() - self.cpu_at_reset,
        }


def serve(port: int, latency: float) -> None:
    import uvicorn

    uvicorn.run(CountingJira(latency), host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FakeProcess:
    """The fake Jira served by a child process until :meth:`stop`."""

    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "benchmarks.distinct_questions", "--serve"]
        command += ["--port", str(self.port), "--latency", str(latency)]
        self.process = subprocess.Popen(command, cwd=HERE.parent)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}{STATS_PATH}", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the fake Jira did not start") from None
                time.sleep(0.1)

    def reset(self) -> None:
        httpx.post(f"{self.url}{RESET_PATH}", timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}{STATS_PATH}", timeout=10).json()
        return answer

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the runs -----------------------------------------------------------------------------------


def floor_seconds(requests: int, latency: float, in_flight: int) -> float:
    """The least time ``requests`` can take: Jira's documented pace, or the in-flight bound."""
    return max(requests / SEARCH_RATE, requests * latency / in_flight) + latency


async def run_okrsync(
    load: Workload, environ: dict[str, str], profile: Path | None
) -> tuple[float, float]:
    """Seconds and CPU seconds (this process) of one run of every metric."""
    from okrsync.app import App
    from okrsync.config import load_config_text
    from okrsync.logging import configure_logging
    from okrsync.plugins import load_registry
    from okrsync.redaction import Redactor
    from okrsync.settings import Settings

    registry = load_registry()
    redactor = Redactor()
    configure_logging(redactor, fmt="json", level="error")
    config = load_config_text(load.yaml, registry.connectors, filename="q.yaml", environ=environ)
    with tempfile.TemporaryDirectory(prefix="okrsync-distinct-") as tmp:
        settings = Settings(database_url=SecretStr(f"sqlite:///{tmp}/store.db"))
        app = App.open(settings, config=config, registry=registry, redactor=redactor)
        try:
            app.apply_definitions()
            profiler = cProfile.Profile(time.process_time) if profile else None
            began, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            report = await app.sync.run_once(trigger="benchmark")
            if profiler:
                profiler.disable()
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
            if profiler and profile:
                profiler.dump_stats(str(profile))
            if report.errors:
                raise RuntimeError(f"okrsync's run failed: {report.errors[:3]}")
            return seconds, cpu
        finally:
            await app.aclose()


def run_naive_script(size: int, url: str) -> dict[str, float]:
    """The naive script as a user runs it: its own process, nothing of okrsync imported."""
    today = datetime.now(UTC).date()
    environ = {"B_JIRA_URL": url, "B_JIRA_EMAIL": DEFAULT_EMAIL}
    environ["B_JIRA_API_TOKEN"] = DEFAULT_API_TOKEN
    cpu = time.process_time()
    report = asyncio.run(run_naive(workload(size, today), environ, today))
    if report.errors:
        raise RuntimeError(f"the naive script failed: {report.errors[:3]}")
    return {"seconds": report.seconds, "cpu_seconds": time.process_time() - cpu}


def naive_process(size: int, url: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.distinct_questions", "--naive", url]
    command += ["--size", str(size)]
    done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True, check=True)
    answer: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def measure(size: int, latency: float, profile: Path | None) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    load = workload(size, today)
    load_start = os.getloadavg()
    fake = FakeProcess(latency)
    try:
        environ = {
            "B_JIRA_URL": fake.url,
            "B_JIRA_EMAIL": DEFAULT_EMAIL,
            "B_JIRA_API_TOKEN": DEFAULT_API_TOKEN,
        }
        fake.reset()
        okrsync_seconds, okrsync_cpu = asyncio.run(run_okrsync(load, environ, profile))
        okrsync_stats = fake.stats()
        fake.reset()
        naive = naive_process(size, fake.url)
        naive_stats = fake.stats()
    finally:
        fake.stop()
    load_end = os.getloadavg()
    defaults = JiraConnection(url="http://x", email="a@b.c", api_token=SecretStr("t"))
    in_flight = defaults.max_concurrency
    okrsync_floor = floor_seconds(okrsync_stats["requests"], latency, in_flight)
    naive_floor = floor_seconds(naive_stats["requests"], latency, NAIVE_CONCURRENCY)
    return {
        "size": size,
        "distinct_jql": load.distinct["jira"],
        "latency": latency,
        "documented_limit_per_second": SEARCH_RATE,
        "okrsync": {
            "seconds": okrsync_seconds,
            "cpu_seconds": okrsync_cpu,
            "fake_cpu_seconds": okrsync_stats["cpu_seconds"],
            "requests": okrsync_stats["requests"],
            "statuses": okrsync_stats["statuses"],
            "rate_limited": okrsync_stats["rate_limited"],
            "peak_in_flight": okrsync_stats["peak_in_flight"],
            "pace_ceiling": defaults.requests_per_second,
            "max_concurrency": in_flight,
            "floor_seconds": okrsync_floor,
            "ratio_to_floor": okrsync_seconds / okrsync_floor,
        },
        "naive": {
            "seconds": naive["seconds"],
            "cpu_seconds": naive["cpu_seconds"],
            "fake_cpu_seconds": naive_stats["cpu_seconds"],
            "requests": naive_stats["requests"],
            "statuses": naive_stats["statuses"],
            "rate_limited": naive_stats["rate_limited"],
            "peak_in_flight": naive_stats["peak_in_flight"],
            "max_concurrency": NAIVE_CONCURRENCY,
            "floor_seconds": naive_floor,
            "ratio_to_floor": naive["seconds"] / naive_floor,
        },
        "okrsync_over_naive": okrsync_seconds / naive["seconds"],
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def markdown(result: dict[str, Any]) -> str:
    ok, naive = result["okrsync"], result["naive"]
    load = result["load_average"]
    met_naive = ok["seconds"] <= naive["seconds"]
    met_floor = ok["ratio_to_floor"] <= 1.2
    rows = [
        "| | okrsync | naive script |",
        "| --- | ---: | ---: |",
        f"| seconds | {ok['seconds']:.2f} | {naive['seconds']:.2f} |",
        f"| requests at the fake | {ok['requests']:,} | {naive['requests']:,} |",
        f"| CPU seconds, this process | {ok['cpu_seconds']:.2f} | {naive['cpu_seconds']:.2f} |",
        f"| CPU seconds, the fake's process | {ok['fake_cpu_seconds']:.2f} "
        f"| {naive['fake_cpu_seconds']:.2f} |",
        f"| 429 answers | {ok['statuses'].get('429', 0)} | {naive['statuses'].get('429', 0)} |",
        f"| most requests in flight at the fake | {ok['peak_in_flight']} "
        f"| {naive['peak_in_flight']} |",
        f"| in flight allowed | {ok['max_concurrency']} | {naive['max_concurrency']} |",
        f"| floor (seconds) | {ok['floor_seconds']:.2f} | {naive['floor_seconds']:.2f} |",
        f"| ratio to floor | {ok['ratio_to_floor']:.2f} | {naive['ratio_to_floor']:.2f} |",
    ]
    return "\n".join(
        [
            "# Distinct questions",
            "",
            f"{result['size']:,} key results, {result['distinct_jql']:,} distinct JQL, against the "
            f"sandbox Jira in its own process with {result['latency'] * 1000:.0f} ms latency and "
            f"Jira Cloud's documented burst limit of {result['documented_limit_per_second']:.0f} "
            f"requests a second on the search endpoint; generated by "
            f"`python -m benchmarks.distinct_questions` at {result['measured_at']} on "
            f"{result['cpus']} CPUs, load average {load['start'][0]:.2f} at the start and "
            f"{load['end'][0]:.2f} at the end.",
            "",
            *rows,
            "",
            f"okrsync took {ok['seconds']:.2f} s, {result['okrsync_over_naive']:.2f}x the naive "
            f"script's {naive['seconds']:.2f} s (target ≤ 1: "
            f"{'met' if met_naive else 'not met'}), and {ok['ratio_to_floor']:.2f}x its floor of "
            f"{ok['floor_seconds']:.2f} s (target ≤ 1.2: {'met' if met_floor else 'not met'}). "
            f"The floor is the requests at Jira's documented "
            f"{result['documented_limit_per_second']:.0f}/s, or the requests x latency over the "
            "requests allowed in flight when that is slower, plus one latency.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--naive", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive:
        print(json.dumps(run_naive_script(args.size, args.naive)))
        return {}
    if args.serve:
        serve(args.port, args.latency)
        return {}
    result = measure(args.size, args.latency, args.profile)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "distinct_questions.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.output / "distinct_questions.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
