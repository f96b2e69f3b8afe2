"""The read side at 10,000 key results (or more): the JSON API's pages, one key result, /metrics,
and /healthz while list calls, scrapes and a recording pass load the store.

The store is bulk-loaded as :mod:`benchmarks.dashboard_bench` does (``size`` key results, ten per
objective, twelve measurements each; no sync pass), then the HTTP app ``okrsync run`` serves
(:func:`okrsync.api.app.build_app`) is started on a loopback socket and asked over HTTP: each
list's first page and a page from its middle (by cursor), one objective, one key result, a 304
on a current ETag, and ``/metrics``; the first answer of each is counted for bytes and SQL
statements, then ``repeat`` more are timed. Last, ``/healthz`` is timed, from a process of its
own, while four processes load the server and the store: one walks ``/api/v1/key-results?limit=
1000`` and ``/api/v1/objectives?limit=1000`` pages, one scrapes ``/metrics``, one records a
simulated pass (every key result's value confirmed and a measurement inserted, 500 per
transaction, as a pass writes), and one posts a burst of ``WEBHOOKS`` signed webhooks to
``/hooks/warehouse``. Meanwhile a ticker task on the server's own event loop measures the loop's
lag (how late a 5 ms sleep wakes): what a request waits for the loop, apart from the network and
the client. The load average is recorded at the start and the end of the run.

``--store-threads`` sets how many store calls run at once (:data:`okrsync.store.offload.
STORE_THREADS`) and ``--switch-interval`` the interpreter's thread switch interval the server
sets while it serves (:data:`okrsync.api.server.SWITCH_INTERVAL`; Python's default is 5 ms): the
worker threads building pages hold the interpreter lock, and the loop waits for it after each of
its waits. ``--slow-callbacks`` turns asyncio's debug mode on for the server's loop and names the
callbacks that held it longer than 20 ms.

Results go to ``benchmarks/read_side.json`` and a markdown section computed from them
(``benchmarks/read_side.md``); nothing in the text is written by hand.

    python -m benchmarks.read_side [--size 10000] [--repeat 30] [--pg URL|none] [--label main]
        [--store-threads 4] [--switch-interval 0.005] [--health-only]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import re
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text, update
from starlette.types import ASGIApp

from benchmarks.dashboard_bench import KRS_PER_OBJECTIVE, count_statements, load_store
from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.server import SWITCH_INTERVAL, HttpServer, bind
from okrsync.config import load_config_text
from okrsync.engine.sync import RunReport
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.settings import Settings
from okrsync.store import offload
from okrsync.store.db import make_engine
from okrsync.store.tables import KeyResultRow, MeasurementRow

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
PASS_CHUNK = 500
HEALTH_SAMPLES = 400
HEALTH_SECONDS = 60.0  # or fewer samples, when each waits long (as before this change)
WEBHOOKS = 2_000
HOOK_SECRET = "read-side-hook-secret"
LAG_TICK = 0.005  # seconds the loop-lag ticker sleeps
SLOW_CALLBACK = 0.02  # with --slow-callbacks: a callback holding the loop longer is reported

# the API serves the OKRs from the store; the config only names the cycle and a connection
CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///:memory:"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  m: {connection: warehouse, query: "SELECT 1", schedule: every 1h}
objectives:
  - id: o00000
    title: Objective
    cycle: 2026-Q4
    key_results:
      - {id: kr000000, title: KR, metric: m, kind: increase, start: 0, target: 1000}
"""


class CountedRuns:
    """The webhooks' run requests, counted and not run (the recording load is the simulated
    pass): each is answered as cancelled, as a daemon that stopped answers one."""

    def __init__(self) -> None:
        self.requested = 0

    def __call__(
        self,
        *,
        metrics: Collection[str] | None = None,
        key_results: Collection[str] | None = None,
        trigger: str = "webhook",
    ) -> asyncio.Future[RunReport]:
        self.requested += 1
        future: asyncio.Future[RunReport] = asyncio.get_running_loop().create_future()
        future.cancel()
        return future


def _context(url: str, engine: Engine, secrets: Path, runs: CountedRuns) -> ApiContext:
    registry = load_registry()
    config = load_config_text(CONFIG, registry.connectors, filename="read_side.yaml")
    (secrets / "OKRSYNC_HOOK_SECRET_WAREHOUSE").write_text(HOOK_SECRET + "\n")
    return ApiContext(
        settings=Settings(
            database_url=SecretStr(url),
            secrets_dir=secrets,
            hook_debounce_seconds=0.5,
            public_read=True,  # the readers send no token
        ),
        config=config,
        engine=engine,
        redactor=Redactor(),
        clock=lambda: NOW,
        request_run=runs,
    )


class LoopLag:
    """A ticker on the server's loop: how late each :data:`LAG_TICK` sleep wakes, while
    ``recording``."""

    def __init__(self) -> None:
        self.recording = False
        self.lags: list[float] = []

    async def watch(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            if self.recording:
                self.lags.append(time.perf_counter() - began - LAG_TICK)

    def figures(self) -> dict[str, Any]:
        lags = self.lags or [0.0]
        return {
            "ticks": len(self.lags),
            "p50_ms": round(statistics.median(lags) * 1000, 2),
            "p99_ms": _percentile(lags, 0.99),
            "max_ms": round(max(lags) * 1000, 2),
        }


def _nodelay_socket() -> socket.socket:
    """A socket as :func:`okrsync.api.server.bind` makes one, but created with IPPROTO_TCP, so
    asyncio sets TCP_NODELAY on each accepted connection (it checks the socket's protocol)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class SlowCallbacks(logging.Handler):
    """asyncio's debug report of each callback that held the loop longer than its
    ``slow_callback_duration``: how many, and the longest per callback (named without ids)."""

    PATTERN = re.compile(r"Executing (?P<what>.+) took (?P<seconds>[0-9.]+) seconds")

    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()
        self.longest: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PATTERN.search(record.getMessage())
        if found is None:
            return
        what = re.sub(r" at 0x[0-9a-f]+|id=\d+|:\d+>", "", found["what"])[:160]
        self.count[what] += 1
        self.longest[what] = max(self.longest.get(what, 0.0), float(found["seconds"]))

    def figures(self) -> list[dict[str, Any]]:
        return [
            {"callback": what, "times": n, "longest_ms": round(self.longest[what] * 1000, 1)}
            for what, n in self.count.most_common(8)
        ]


@contextmanager
def serve(
    app: ASGIApp,
    *,
    nodelay: bool,
    lag: LoopLag,
    slow: SlowCallbacks | None = None,
    switch_interval: float = SWITCH_INTERVAL,
) -> Iterator[str]:
    """``app`` behind the daemon's own HTTP server (:class:`okrsync.api.server.HttpServer`), on
    its own loop in a thread, with ``lag``'s ticker on that loop; yields the base URL."""
    sock = _nodelay_socket() if nodelay else bind("127.0.0.1", 0)
    server = HttpServer(app, sock, switch_interval=switch_interval)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        if slow is not None:  # asyncio's debug mode names each callback that held the loop
            loop.set_debug(True)
            loop.slow_callback_duration = SLOW_CALLBACK
            logging.getLogger("asyncio").addHandler(slow)
        loop.run_until_complete(server.start())
        ticker = loop.create_task(lag.watch())
        started.set()
        loop.run_forever()
        ticker.cancel()
        loop.run_until_complete(asyncio.wait([ticker]))

    thread = threading.Thread(target=run, name="read-side-http", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the HTTP server did not start")
    host, port = server.address
    try:
        yield f"http://{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return round(ordered[max(0, round(share * len(ordered)) - 1)] * 1000, 2)


def _targets(http: httpx.Client, size: int) -> dict[str, tuple[str, dict[str, str]]]:
    """The requests timed: name -> (path, headers). Middle pages come from a cursor walk."""
    middle_kr = f"kr{size // 2:06d}"
    middle_objective = f"o{size // KRS_PER_OBJECTIVE // 2:05d}"
    out: dict[str, tuple[str, dict[str, str]]] = {
        "key-results page 1 (100)": ("/api/v1/key-results", {}),
        "objectives page 1 (25)": ("/api/v1/objectives", {}),
    }
    for name, path in (
        ("key-results", "/api/v1/key-results?limit=1000"),
        ("objectives", "/api/v1/objectives?limit=100"),
    ):
        answer = http.get(path).json()
        cursor = answer.get("next_cursor")
        for _ in range(4):  # five pages in: the middle of 10,000 key results
            if not cursor:
                break
            answer = http.get(path, params={"cursor": cursor}).json()
            cursor = answer.get("next_cursor")
        if cursor:
            out[f"{name} page by cursor (100)"] = (
                f"/api/v1/{name}?limit=100&cursor={cursor}",
                {},
            )
    out["objectives of a cycle (25)"] = ("/api/v1/objectives?cycle=2026-Q4", {})
    out["one objective"] = (f"/api/v1/objectives/{middle_objective}", {})
    out["one key result"] = (f"/api/v1/key-results/{middle_kr}", {})
    etag = http.get(f"/api/v1/key-results/{middle_kr}").headers.get("etag")
    if etag:
        out["one key result, If-None-Match (304)"] = (
            f"/api/v1/key-results/{middle_kr}",
            {"If-None-Match": etag},
        )
    out["measurements of one (100)"] = (f"/api/v1/key-results/{middle_kr}/measurements", {})
    out["/metrics"] = ("/metrics", {})
    out["/healthz (idle)"] = ("/healthz", {})
    return out


def _measure(http: httpx.Client, engine: Engine, size: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (path, headers) in _targets(http, size).items():
        with count_statements(engine) as statements:
            first = http.get(path, headers=headers)
        assert first.status_code in (200, 304), (path, first.status_code, first.text[:200])
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = http.get(path, headers=headers)
            times.append(time.perf_counter() - began)
            assert response.status_code == first.status_code
        out[name] = {
            "path": path,
            "status": first.status_code,
            "p50_ms": round(statistics.median(times) * 1000, 2),
            "p95_ms": _percentile(times, 0.95),
            "bytes": len(first.content),
            "statements": len(statements),
            "requests": repeat,
        }
    return out


def _simulated_pass(engine: Engine, size: int, stop: Any) -> int:
    """Confirms every key result and records a value for each, ``PASS_CHUNK`` per transaction,
    round and round until ``stop``: the writes of a cold pass. Returns the rows written."""
    written, round_ = 0, 0
    while not stop.is_set():
        round_ += 1
        for first in range(0, size, PASS_CHUNK):
            if stop.is_set():
                break
            ids = [f"kr{i:06d}" for i in range(first, min(size, first + PASS_CHUNK))]
            when = NOW + timedelta(seconds=round_)
            with engine.begin() as conn:
                conn.execute(
                    update(KeyResultRow)
                    .where(KeyResultRow.id.in_(ids))  # type: ignore[attr-defined]
                    .values(checked_at=when)
                )
                conn.execute(
                    MeasurementRow.__table__.insert(),  # type: ignore[attr-defined]
                    [
                        {
                            "key_result_id": kr,
                            "value": round_,
                            "progress": 0,
                            "status": "on_track",
                            "observed_at": when,
                            "origin": "auto",
                            "provenance": [],
                        }
                        for kr in ids
                    ],
                )
            written += len(ids)
    return written


def _lists(base: str, stop: Any, done: Any) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        while not stop.is_set():
            for path in ("/api/v1/key-results?limit=1000", "/api/v1/objectives?limit=1000"):
                http.get(path).raise_for_status()
                with done.get_lock():
                    done.value += 1


def _scrapes(base: str, stop: Any, done: Any) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        while not stop.is_set():
            http.get("/metrics").raise_for_status()
            with done.get_lock():
                done.value += 1


def _signed(body: bytes) -> dict[str, str]:
    """okrsync's own webhook scheme: HMAC-SHA256 of ``"<timestamp>." + body``."""
    stamp = str(int(time.time()))
    mac = hmac.new(HOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return {
        "X-Okrsync-Timestamp": stamp,
        "X-Okrsync-Signature": "sha256=" + mac.hexdigest(),
        "Content-Type": "application/json",
    }


def _webhooks(base: str, stop: Any, done: Any) -> None:
    """A burst of :data:`WEBHOOKS` signed webhooks, as fast as they are answered."""
    with httpx.Client(base_url=base, timeout=120) as http:
        for n in range(WEBHOOKS):
            if stop.is_set():
                return
            body = json.dumps({"event": "deal.updated", "n": n}).encode()
            answer = http.post("/hooks/warehouse", content=body, headers=_signed(body))
            assert answer.status_code == 202, answer.text
            with done.get_lock():
                done.value += 1


def _health_samples(base: str, stop: Any, times: Any, count: Any) -> None:
    """``/healthz`` timed from a process of its own (a client in the server's process would
    wait for the server's interpreter lock itself), until ``stop`` or :data:`HEALTH_SAMPLES`."""
    with httpx.Client(base_url=base, timeout=30) as http:
        while count.value < len(times) and not stop.is_set():
            began = time.perf_counter()
            http.get("/healthz").raise_for_status()
            times[count.value] = time.perf_counter() - began
            count.value += 1
            time.sleep(0.005)


def _recording(url: str, size: int, stop: Any, done: Any) -> None:
    engine = make_engine(url)
    try:
        done.value = _simulated_pass(engine, size, stop)
    finally:
        engine.dispose()


@contextmanager
def _load(base: str, url: str, size: int) -> Iterator[dict[str, Any]]:
    """List walks, scrapes and a simulated pass, each in a process of its own (so the load's
    own Python does not compete with the server for its interpreter lock), while the block
    runs."""
    mp = multiprocessing.get_context("spawn")
    stop = mp.Event()
    loads = ("list_pages", "scrapes", "pass_rows", "webhooks")
    done = {name: mp.Value("q", 0) for name in loads}
    processes = [
        mp.Process(target=_lists, args=(base, stop, done["list_pages"]), daemon=True),
        mp.Process(target=_scrapes, args=(base, stop, done["scrapes"]), daemon=True),
        mp.Process(target=_recording, args=(url, size, stop, done["pass_rows"]), daemon=True),
        mp.Process(target=_webhooks, args=(base, stop, done["webhooks"]), daemon=True),
    ]
    for process in processes:
        process.start()
    counts: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(  # every load under way
        v.value for k, v in done.items() if k in ("list_pages", "scrapes")
    ):
        time.sleep(0.05)
    try:
        yield counts
    finally:
        stop.set()
        for process in processes:
            process.join(300)
        counts.update({name: value.value for name, value in done.items()})


def _health_under_load(base: str, url: str, size: int, lag: LoopLag) -> dict[str, Any]:
    mp = multiprocessing.get_context("spawn")
    stop = mp.Event()
    samples, count = mp.Array("d", HEALTH_SAMPLES), mp.Value("q", 0)
    with _load(base, url, size) as counts:
        lag.recording = True
        sampler = mp.Process(target=_health_samples, args=(base, stop, samples, count))
        sampler.start()
        sampler.join(HEALTH_SECONDS)
        stop.set()
        sampler.join(60)
        lag.recording = False
    times = list(samples[: count.value])
    return {
        "samples": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "p95_ms": _percentile(times, 0.95),
        "p99_ms": _percentile(times, 0.99),
        "max_ms": round(max(times) * 1000, 2),
        "load": dict(counts),
        "loop_lag": lag.figures(),
    }


def bench(
    url: str,
    size: int,
    repeat: int,
    nodelay: bool,
    health_only: bool,
    debug: bool,
    switch_interval: float,
) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        began = time.perf_counter()
        load_store(engine, size)
        loaded = time.perf_counter() - began
        runs, lag = CountedRuns(), LoopLag()
        slow = SlowCallbacks() if debug else None
        with tempfile.TemporaryDirectory(prefix="okrsync-secrets-") as secrets:
            ctx = _context(url, engine, Path(secrets), runs)
            with (
                serve(
                    build_app(ctx),
                    nodelay=nodelay,
                    lag=lag,
                    slow=slow,
                    switch_interval=switch_interval,
                ) as base,
                httpx.Client(base_url=base, timeout=120) as http,
            ):
                pages = {} if health_only else _measure(http, engine, size, repeat)
                health = _health_under_load(base, url, size, lag)
        health["load"]["webhook_runs_requested"] = runs.requested
        if slow is not None:
            health["slow_callbacks"] = slow.figures()
        return {"load_seconds": round(loaded, 1), "requests": pages, "healthz_under_load": health}
    finally:
        engine.dispose()


def run(
    size: int,
    repeat: int,
    pg_url: str | None,
    label: str,
    nodelay: bool,
    health_only: bool = False,
    debug: bool = False,
    switch_interval: float = SWITCH_INTERVAL,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": label,
        "key_results": size,
        "repeat": repeat,
        "socket": "TCP_NODELAY" if nodelay else "okrsync.api.server.bind",
        "store_threads": offload.STORE_THREADS,
        "switch_interval_ms": round(switch_interval * 1000, 3),
        "load_average_start": list(os.getloadavg()),
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="okrsync-read-") as tmp:
        sqlite = f"sqlite:///{tmp}/store.db"
        out["stores"]["sqlite"] = bench(
            sqlite, size, repeat, nodelay, health_only, debug, switch_interval
        )
    if pg_url:
        schema = f"read_{uuid.uuid4().hex[:8]}"
        root = create_engine(pg_url)
        try:
            with root.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{pg_url}?options=-csearch_path%3D{schema}"
                out["stores"]["postgresql"] = bench(
                    url, size, repeat, nodelay, health_only, debug, switch_interval
                )
            finally:
                with root.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        except Exception as exc:  # no PostgreSQL here: say so, keep SQLite's figures
            out["stores"]["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            root.dispose()
    out["load_average_end"] = list(os.getloadavg())
    return out


TARGETS_MS = {"page": 100.0, "one key result": 20.0, "/metrics": 300.0, "healthz p99": 50.0}


def _target(name: str) -> float | None:
    if name == "/metrics":
        return TARGETS_MS["/metrics"]
    if name.startswith("one key result"):
        return TARGETS_MS["one key result"]
    if "page" in name or name.endswith(("(25)", "(100)")) or name == "one objective":
        return TARGETS_MS["page"]
    return None


def markdown(result: dict[str, Any]) -> str:
    """The section for the results, every figure and verdict computed from ``result``."""
    lines = [
        f"## Read side at {result['key_results']:,} key results ({result['label']})",
        "",
        "The HTTP app and server of `okrsync run` on a loopback socket "
        f"({result.get('socket', 'okrsync.api.server.bind')}) over a bulk-loaded store; the first "
        "answer of each request counted for bytes and SQL statements, then "
        f"{result['repeat']} timed. Targets: a page p95 < {TARGETS_MS['page']:g} ms, one key "
        f"result p95 < {TARGETS_MS['one key result']:g} ms, `/metrics` < "
        f"{TARGETS_MS['/metrics']:g} ms, `/healthz` p99 < {TARGETS_MS['healthz p99']:g} ms "
        "while list pages, scrapes, a recording pass and a webhook burst run. "
        f"{result.get('store_threads', 4)} store threads, thread switch interval "
        f"{result.get('switch_interval_ms', 5.0):g} ms; load average (1, 5, 15 min) "
        f"{_loads(result.get('load_average_start'))} at the start, "
        f"{_loads(result.get('load_average_end'))} at the end (the machine is shared).",
        "",
        "| store | request | status | p50 ms | p95 ms | bytes | SQL statements | target met |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    verdicts: list[bool] = []
    health_lines = []
    for store, figures in result["stores"].items():
        if "error" in figures:
            lines.append(f"| {store} | not measured: {figures['error']} | | | | | | |")
            continue
        for name, fig in figures["requests"].items():
            target = _target(name)
            ok = None if target is None else fig["p95_ms"] < target
            if ok is not None:
                verdicts.append(ok)
            verdict = "" if ok is None else ("yes" if ok else "no")
            lines.append(
                f"| {store} | `{name}` | {fig['status']} | {fig['p50_ms']} | {fig['p95_ms']} | "
                f"{fig['bytes']:,} | {fig['statements']} | {verdict} |"
            )
        h = figures["healthz_under_load"]
        ok = h["p99_ms"] < TARGETS_MS["healthz p99"]
        verdicts.append(ok)
        load = h["load"]
        lag = h.get("loop_lag", {})
        hooks = (
            f", {load['webhooks']:,} webhooks ({load.get('webhook_runs_requested', 0)} runs asked)"
            if "webhooks" in load
            else ""
        )
        health_lines.append(
            f"| {store} | {h['samples']} | {h['p50_ms']} | {h['p95_ms']} | {h['p99_ms']} | "
            f"{h['max_ms']} | {lag.get('p99_ms', '')} | {lag.get('max_ms', '')} | "
            f"{load['list_pages']} pages of 1,000, {load['scrapes']} scrapes, "
            f"{load['pass_rows']:,} rows recorded{hooks} | {'yes' if ok else 'no'} |"
        )
    lines += [
        "",
        "`/healthz` while the store is loaded:",
        "",
        "| store | samples | p50 ms | p95 ms | p99 ms | max ms | loop lag p99 ms | loop lag max ms "
        "| load meanwhile | target met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        *health_lines,
        "",
        f"{sum(verdicts)} of {len(verdicts)} figures with a target meet it.",
    ]
    return "\n".join(lines) + "\n"


def _loads(values: list[float] | None) -> str:
    return "not recorded" if not values else " / ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL, or 'none'")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument(
        "--nodelay",
        action="store_true",
        help="serve on a socket created with IPPROTO_TCP (asyncio then sets TCP_NODELAY)",
    )
    parser.add_argument(
        "--store-threads", type=int, default=offload.STORE_THREADS, help="store calls at once"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=SWITCH_INTERVAL,
        help="the server's sys.setswitchinterval while it serves, seconds",
    )
    parser.add_argument(
        "--health-only", action="store_true", help="only /healthz under load (no page timings)"
    )
    parser.add_argument(
        "--slow-callbacks",
        action="store_true",
        help="asyncio debug mode on the server's loop: name the callbacks that hold it",
    )
    parser.add_argument("--out", default=str(HERE / "read_side"))
    args = parser.parse_args()
    pg = None if args.pg == "none" else args.pg
    offload.STORE_THREADS = args.store_threads
    result = run(
        args.size,
        args.repeat,
        pg,
        args.label,
        args.nodelay,
        args.health_only,
        args.slow_callbacks,
        args.switch_interval,
    )
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
