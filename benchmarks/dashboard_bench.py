"""The dashboard at 10,000 key results: p50/p95, bytes and SQL statements of its pages.

The store is bulk-loaded (definitions and measurements inserted with ``executemany``, as
``store_bench`` does, no sync pass): ``size`` key results, ten per objective, objectives owned by
fifty teams in one running cycle, ``HISTORY`` measurements per key result. Then ``/``, ``/`` with
filters, and one objective's page are requested through the ASGI app (the same routes the daemon
serves, worker thread included) and timed, on SQLite and on PostgreSQL. Results go to
``benchmarks/dashboard_bench.json`` and a markdown section computed from them
(``benchmarks/dashboard_bench.md``); nothing in the text is written by hand.

    python -m benchmarks.dashboard_bench [--size 10000] [--repeat 30] [--pg URL|none]
        [--baseline path/to/old_dashboard.py] [--compare earlier.json] [--out path/stem]

The committed ``dashboard_bench_baseline.*`` is the dashboard before issue 13 (``git show
add973b^:okrsync/api/dashboard.py``) measured with ``--baseline … --pg none --repeat 3``; the
committed ``dashboard_bench.*`` is ``--compare benchmarks/dashboard_bench_baseline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, event, insert, text
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from okrsync.store.db import make_engine, upgrade
from okrsync.store.tables import CycleRow, KeyResultRow, MeasurementRow, ObjectiveRow

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).resolve().parent
KRS_PER_OBJECTIVE = 10
OWNERS = 50
HISTORY = 12
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
CYCLE = ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))

RoutesFactory = Callable[[Engine, Callable[[], datetime]], list[BaseRoute]]


def load_store(
    engine: Engine, size: int, per_objective: int = KRS_PER_OBJECTIVE, history: int = HISTORY
) -> None:
    """``size`` key results with their objectives and ``history`` values each, inserted in bulk.

    Progress spreads over 0-1.2 (no two neighbours alike) so every status occurs; every seventh
    key result has a 1-day staleness deadline it missed.
    """
    upgrade(engine)
    cycle_id, start, end = CYCLE
    objectives = []
    for o in range(-(-size // per_objective)):
        objectives.append(
            {
                "id": f"o{o:05d}",
                "title": f"Objective {o}: grow the {o % 7}th market",
                "cycle_id": cycle_id,
                "owner": f"team{o % OWNERS}",
                "position": o,
                "weight": Decimal(1),
            }
        )
    krs = []
    measurements = []
    provenance = [{"connection": "jira", "query": "project = OKR AND status = Done"}]
    for i in range(size):
        progress = Decimal(i * 7919 % 12_001) / 10_000  # 12,001 distinct values in 0-1.2
        kr_id = f"kr{i:06d}"
        krs.append(
            {
                "id": kr_id,
                "objective_id": f"o{i // per_objective:05d}",
                "title": f"Key result {i}",
                "kind": "increase",
                "start": Decimal(0),
                "target": Decimal(1000),
                "unit": "deals",
                "weight": Decimal(1),
                "metric": f"m{i:06d}",
                "stale_after_seconds": 86400 if i % 7 == 0 else None,
                "position": i,
                "value": progress * 1000,
                "progress": progress,
                "status": "on_track",
                "observed_at": NOW - timedelta(days=2),
                "checked_at": NOW - timedelta(days=2),
                "last_measurement_id": (i + 1) * history if history else None,
            }
        )
        for h in range(history):
            share = progress * (h + 1) / history
            measurements.append(
                {
                    "id": i * history + h + 1,
                    "key_result_id": kr_id,
                    "value": share * 1000,
                    "progress": share,
                    "status": "on_track",
                    "observed_at": NOW - timedelta(days=2 + 3 * (history - 1 - h)),
                    "run_id": f"run{h}",
                    "origin": "auto",
                    "provenance": provenance,
                }
            )
    with engine.begin() as conn:
        conn.execute(
            insert(CycleRow), [{"id": cycle_id, "start": start, "end": end, "archived_at": None}]
        )
        conn.execute(insert(ObjectiveRow), objectives)
        for chunk in _chunks(krs, 5000):
            conn.execute(insert(KeyResultRow), chunk)
        for chunk in _chunks(measurements, 20000):
            conn.execute(insert(MeasurementRow), chunk)
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('measurements', 'id'), :n)"),
                {"n": max(1, len(measurements))},
            )
            conn.execute(text("ANALYZE"))


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _routes(baseline: str | None) -> RoutesFactory:
    if baseline is None:
        from okrsync.api.dashboard import dashboard_routes

        return dashboard_routes
    spec = importlib.util.spec_from_file_location("baseline_dashboard", baseline)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    factory: RoutesFactory = module.dashboard_routes
    return factory


def pages(size: int) -> dict[str, str]:
    middle = f"o{size // KRS_PER_OBJECTIVE // 2:05d}"
    return {
        "/": "/",
        "/ (owner, status, search)": "/?owner=team7&status=off_track&q=objective",
        "/?status=at_risk": "/?status=at_risk",
        "/?page=20": "/?page=20",
        "/objectives/{id}": f"/objectives/{middle}",
    }


async def _measure(
    engine: Engine, factory: RoutesFactory, size: int, repeat: int
) -> dict[str, Any]:
    app = Starlette(routes=factory(engine, lambda: NOW))
    out: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for name, path in pages(size).items():
            with count_statements(engine) as statements:
                first = await client.get(path)
            assert first.status_code == 200, (path, first.status_code)
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                response = await client.get(path)
                times.append(time.perf_counter() - began)
                assert response.status_code == 200
            times.sort()
            out[name] = {
                "path": path,
                "p50_ms": round(statistics.median(times) * 1000, 1),
                "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)] * 1000, 1),
                "bytes": len(first.content),
                "statements": len(statements),
                "requests": repeat,
            }
    return out


def bench(url: str, size: int, repeat: int, factory: RoutesFactory) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        began = time.perf_counter()
        load_store(engine, size)
        loaded = time.perf_counter() - began
        result = asyncio.run(_measure(engine, factory, size, repeat))
        return {"load_seconds": round(loaded, 1), "pages": result}
    finally:
        engine.dispose()


def run(size: int, repeat: int, pg_url: str | None, baseline: str | None) -> dict[str, Any]:
    factory = _routes(baseline)
    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "key_results": size,
        "objectives": -(-size // KRS_PER_OBJECTIVE),
        "measurements": size * HISTORY,
        "dashboard": "baseline " + baseline if baseline else "okrsync.api.dashboard",
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="okrsync-dash-") as tmp:
        out["stores"]["sqlite"] = bench(f"sqlite:///{tmp}/store.db", size, repeat, factory)
    if pg_url:
        schema = f"dash_{uuid.uuid4().hex[:8]}"
        root = create_engine(pg_url)
        try:
            with root.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{pg_url}?options=-csearch_path%3D{schema}"
                out["stores"]["postgresql"] = bench(url, size, repeat, factory)
            finally:
                with root.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        except Exception as exc:  # no PostgreSQL here: say so, keep SQLite's figures
            out["stores"]["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            root.dispose()
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


TARGET_P95_MS = 150
TARGET_BYTES = 300_000


def markdown(result: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The section for the results, every figure and verdict computed from ``result`` (and from
    ``before``, a run of the same harness on an older dashboard, when given)."""
    lines = [
        "## Dashboard at scale",
        "",
        f"{result['key_results']:,} key results in {result['objectives']:,} objectives, "
        f"{result['measurements']:,} measurements; pages served by `{result['dashboard']}` "
        "through its ASGI app (first request counted for bytes and SQL statements, then "
        "timed). Targets: p95 < "
        f"{TARGET_P95_MS} ms, < {TARGET_BYTES // 1000} KB, a fixed number of statements per page.",
        "",
        *_machine(result),
        "| store | page | p50 ms | p95 ms | bytes | SQL statements | meets targets |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    verdicts = []
    for store, figures in result["stores"].items():
        if "error" in figures:
            lines.append(f"| {store} | not measured: {figures['error']} | | | | | |")
            continue
        for name, page in figures["pages"].items():
            ok = page["p95_ms"] < TARGET_P95_MS and page["bytes"] < TARGET_BYTES
            verdicts.append(ok)
            lines.append(
                f"| {store} | `{name}` | {page['p50_ms']} | {page['p95_ms']} | "
                f"{page['bytes']:,} | {page['statements']} | {'yes' if ok else 'no'} |"
            )
    met = sum(verdicts)
    lines += ["", f"{met} of {len(verdicts)} page figures meet both targets."]
    if before is not None:
        lines += ["", *_comparison(result, before)]
    return "\n".join(lines) + "\n"


def _machine(result: dict[str, Any]) -> list[str]:
    if "load_average_at_start" not in result:
        return []
    start, end = result["load_average_at_start"][0], result["load_average_at_end"][0]
    return [
        f"Machine: {result['cpus']} CPUs, 1-minute load average {start} at the start and {end} "
        "at the end (other work was running: times are wall-clock, shared).",
        "",
    ]


def _comparison(result: dict[str, Any], before: dict[str, Any]) -> list[str]:
    lines = [
        f"Before, `{before['dashboard']}` on the same {before['key_results']:,} key results "
        "(it has no filters or pages, so every overview variant is the whole overview):",
        "",
        "| store | page | p50 ms before → now | bytes before → now | statements before → now |",
        "| --- | --- | --- | --- | --- |",
    ]
    for store, figures in before["stores"].items():
        now = result["stores"].get(store, {}).get("pages", {})
        for name, old in figures.get("pages", {}).items():
            new = now.get(name)
            if new is None:
                continue
            lines.append(
                f"| {store} | `{name}` | {old['p50_ms']} → {new['p50_ms']} "
                f"({old['p50_ms'] / max(new['p50_ms'], 0.1):,.0f}x) | "
                f"{old['bytes']:,} → {new['bytes']:,} | "
                f"{old['statements']:,} → {new['statements']} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL, or 'none'")
    parser.add_argument("--baseline", help="a dashboard module file to measure instead")
    parser.add_argument("--compare", help="a JSON result of an earlier run, shown beside this one")
    parser.add_argument("--out", default=str(HERE / "dashboard_bench"))
    args = parser.parse_args()
    result = run(args.size, args.repeat, None if args.pg == "none" else args.pg, args.baseline)
    before = json.loads(Path(args.compare).read_text()) if args.compare else None
    text_ = markdown(result, before)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text(text_)
    print(text_)


if __name__ == "__main__":
    main()
