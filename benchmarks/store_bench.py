"""Figure 6: the store's read queries with a million measurements, on SQLite and PostgreSQL.

Definitions come from a generated config (1,000 key results); measurements are bulk-inserted
(``executemany`` on SQLite, ``COPY`` on PostgreSQL) spread evenly over the key results; then
``status_view`` (what ``status --json`` runs) and ``history`` are timed, best of 3.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.workload import OFFLINE_ENVIRON, generate
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import load_registry
from okrsync.settings import Settings
from okrsync.store import views
from okrsync.store.db import normalise_url, session_scope

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY_RESULTS = 1000
COLUMNS = (
    "key_result_id",
    "value",
    "progress",
    "status",
    "observed_at",
    "run_id",
    "origin",
    "provenance",
)


def _rows(count: int) -> list[tuple[Any, ...]]:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    provenance = json.dumps([{"connection": "jira", "query": "project = OKR"}])
    return [
        (
            f"kr{i % KEY_RESULTS:05d}",
            i % 997,
            (i % 997) / 1000,
            "on_track",
            start + timedelta(seconds=i),
            "bench",
            "auto",
            provenance,
        )
        for i in range(count)
    ]


def _insert_sqlite(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        fixed = [(*r[:4], r[4].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[5:]) for r in rows]
        cursor.executemany(
            f"INSERT INTO measurements ({', '.join(COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)", fixed
        )
        raw.commit()
    finally:
        raw.close()


def _insert_pg(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()
        with cursor.copy(f"COPY measurements ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def bench_store(
    url: str,
    measurements: int,
    insert: Callable[[Engine, list[Any]], None],
) -> dict[str, Any]:
    registry = load_registry()
    workload = generate(KEY_RESULTS, datetime.now(UTC).date())
    config = load_config_text(
        workload.yaml, registry.connectors, filename="bench.yaml", environ=OFFLINE_ENVIRON
    )
    app = App.open(Settings(database_url=SecretStr(url)), config=config, registry=registry)
    try:
        app.apply_definitions()
        rows = _rows(measurements)
        began = time.perf_counter()
        insert(app.engine, rows)
        loaded = time.perf_counter() - began
        with app.engine.begin() as conn:  # the newest measurement of each key result is current
            conn.execute(
                text(
                    "UPDATE key_results SET value = 1, progress = 0.001, status = 'on_track', "
                    "last_measurement_id = (SELECT MAX(id) FROM measurements m "
                    "WHERE m.key_result_id = key_results.id)"
                )
            )
        now = datetime.now(UTC)

        def status() -> None:
            with session_scope(app.engine) as session:
                views.status_view(session, now)
                views.connections_view(session)

        def history() -> None:
            with session_scope(app.engine) as session:
                views.history(session, "kr00500")

        return {
            "measurements": measurements,
            "load_seconds": loaded,
            "status_json_seconds": _best(status),
            "history_seconds": _best(history),
        }
    finally:
        app.engine.dispose()


@contextmanager
def fresh_store(url: str) -> Iterator[str]:
    """An empty store for one benchmark, never one that holds other data: ``sqlite`` is a new
    file in a temporary directory; a PostgreSQL server URL gets a new schema, dropped after."""
    if url == "sqlite":
        with tempfile.TemporaryDirectory(prefix="okrsync-store-") as tmp:
            yield f"sqlite:///{tmp}/store.db"
        return
    url = normalise_url(url)
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(f"a store is 'sqlite' or a PostgreSQL server URL, not {url!r}")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    root = create_engine(url)
    try:
        with root.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in url else "?"
        try:
            yield f"{url}{separator}options=-csearch_path%3D{schema}"
        finally:
            with root.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        root.dispose()


def run_store(measurements: int, pg_url: str = PG_URL) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with fresh_store("sqlite") as url:
        out["sqlite"] = bench_store(url, measurements, _insert_sqlite)
    try:
        with fresh_store(pg_url) as url:
            out["postgresql"] = bench_store(url, measurements, _insert_pg)
    except Exception as exc:  # no PostgreSQL here: say so, keep SQLite's figure
        out["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


if __name__ == "__main__":
    print(json.dumps(run_store(int(__import__("sys").argv[1])), indent=2))
