"""``okrsync status`` streamed: the output of the view, filters in SQL, rows held bounded."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from okrsync.config import load_config_text
from okrsync.plugins import load_registry
from okrsync.read_models import from_store
from okrsync.store import views
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.definitions import sync_definitions
from okrsync.store.status_stream import (
    StatusFilter,
    StreamStats,
    stream_status,
    write_status_json,
)
from okrsync.store.tables import ConnectionStateRow, KeyResultRow
from okrsync.store.views import ObjectiveView

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
OWNERS = ("sales", "eng", "ops")
KINDS = ("increase", "decrease", "stay_above", "milestone")


def config_text(objectives: int, per_objective: int) -> str:
    lines = [
        "version: 1",
        "connections:",
        '  warehouse: {type: sql, url: "sqlite:///warehouse.db"}',
        "cycles:",
        "  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}",
        "  - {id: 2027-Q1, start: 2027-01-01, end: 2027-03-31}",
        "metrics:",
        '  n: {connection: warehouse, query: "SELECT 1"}',
        "objectives:",
    ]
    for o in range(objectives):
        cycle = "2026-Q4" if o % 4 else "2027-Q1"
        lines.append(
            f"  - {{id: o{o:04d}, title: 'Objective {o} \"é\"', cycle: {cycle}, "
            f"owner: {OWNERS[o % len(OWNERS)]}, key_results: ["
        )
        for k in range(per_objective):
            i = o * per_objective + k
            kind = KINDS[i % len(KINDS)]
            if kind == "milestone":
                target = ""
            elif kind == "stay_above":
                target = ", target: 10"
            elif kind == "decrease":
                target = ", start: 100, target: 0"
            else:
                target = ", start: 0, target: 100"
            lines.append(
                f"      {{id: kr{i:05d}, title: KR {i}, metric: n, kind: {kind}{target}, "
                f"unit: USD, stale_after: 1h}},"
            )
        lines.append("    ]}")
    return "\n".join(lines) + "\n"


def fill(engine: Engine, objectives: int, per_objective: int) -> None:
    """Definitions, then values: some key results without data, some stale, some fresh."""
    config = load_config_text(
        config_text(objectives, per_objective), load_registry().connectors, filename="t.yaml"
    )
    with session_scope(engine) as session:
        sync_definitions(session, config, NOW - timedelta(days=1))
    table = KeyResultRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for i in range(objectives * per_objective):
            if i % 7 == 0:
                continue  # no data
            progress = Decimal(i % 13) / Decimal(10)
            checked = NOW - timedelta(minutes=30 if i % 3 else 90)
            conn.execute(
                update(table)
                .where(table.c.id == f"kr{i:05d}")
                .values(
                    value=Decimal(i) + Decimal("0.25"),
                    progress=progress,
                    observed_at=checked - timedelta(hours=1),
                    checked_at=checked,
                    last_error="vendor said no" if i % 5 == 0 else None,
                )
            )
        state = ConnectionStateRow.__table__  # type: ignore[attr-defined]
        conn.execute(
            state.insert().values(
                name="warehouse",
                type="sql",
                status="failing",
                consecutive_failures=2,
                last_error="timeout",
                last_error_at=NOW,
            )
        )


@pytest.fixture
def store(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    fill(engine, objectives=12, per_objective=4)
    try:
        yield engine
    finally:
        engine.dispose()


def whole_view_json(engine: Engine) -> str:
    """The whole view built in memory, each item as the API answers it, dumped at once."""
    with session_scope(engine) as session:
        document = {
            "objectives": [
                from_store.objective(o).model_dump(mode="json")
                for o in views.status_view(session, NOW)
            ],
            "connections": [
                from_store.connection(c.name, c.type, c).model_dump(mode="json")
                for c in views.connections_view(session)
            ],
        }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def new_json(engine: Engine, where: StatusFilter | None = None, chunk: int = 7) -> str:
    out = io.StringIO()
    with session_scope(engine) as session:
        connections = views.connections_view(session)
        write_status_json(out, stream_status(session, NOW, where, chunk=chunk), connections)
    return out.getvalue()


def test_streamed_json_is_byte_for_byte_the_whole_view_dumped(store: Engine) -> None:
    assert new_json(store) == whole_view_json(store)


def test_an_empty_store_writes_empty_lists() -> None:
    out = io.StringIO()
    write_status_json(out, iter(()), [])
    assert out.getvalue() == json.dumps({"objectives": [], "connections": []}, indent=2) + "\n"


def expected(engine: Engine, where: StatusFilter) -> list[dict[str, Any]]:
    """The filters applied to the whole view in Python."""
    found = []
    for objective in json.loads(whole_view_json(engine))["objectives"]:
        if where.owner is not None and objective["owner"] != where.owner:
            continue
        if where.cycle is not None and objective["cycle"] != where.cycle:
            continue
        krs = [kr for kr in objective["key_results"] if where.wants(kr["status"])]
        if where.status and not krs:
            continue
        found.append({**objective, "key_results": krs})
    return found


@pytest.mark.parametrize(
    "where",
    [
        StatusFilter(owner="eng"),
        StatusFilter(cycle="2027-Q1"),
        StatusFilter(owner="sales", cycle="2026-Q4"),
        StatusFilter(status=frozenset({"no_data"})),
        StatusFilter(status=frozenset({"off_track", "at_risk"}), owner="ops"),
        StatusFilter(owner="nobody"),
    ],
    ids=["owner", "cycle", "owner+cycle", "no_data", "status+owner", "no-match"],
)
def test_filters_match_the_view_filtered_by_hand(store: Engine, where: StatusFilter) -> None:
    shown = json.loads(new_json(store, where))["objectives"]
    assert shown == expected(store, where)
    if where.owner == "nobody":
        assert shown == []
    else:
        assert shown


def test_owner_and_cycle_filters_are_sql_so_other_rows_are_never_read(store: Engine) -> None:
    stats = StreamStats()
    with session_scope(store) as session:
        got = list(stream_status(session, NOW, StatusFilter(owner="eng"), stats=stats))
    assert {o.owner for o in got} == {"eng"}
    assert stats.rows == sum(len(o.key_results) for o in got) == 4 * len(got)


def test_an_objective_keeps_its_rolled_up_progress_when_key_results_are_filtered(
    store: Engine,
) -> None:
    where = StatusFilter(status=frozenset({"no_data"}))
    with session_scope(store) as session:
        whole = {o.id: o for o in views.status_view(session, NOW)}
        for objective in stream_status(session, NOW, where):
            assert {kr.status for kr in objective.key_results} == {"no_data"}
            assert objective.progress == whole[objective.id].progress
            assert objective.status == whole[objective.id].status


def test_rows_are_read_in_chunks_and_one_objective_is_held_at_a_time(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        fill(engine, objectives=150, per_objective=5)
        stats = StreamStats()
        with session_scope(engine) as session:
            count = sum(1 for _ in stream_status(session, NOW, chunk=64, stats=stats))
        assert count == stats.objectives == 150
        assert stats.rows == 750
        assert stats.max_chunk <= 64 and stats.chunks >= 750 // 64
        assert stats.max_held == 5  # one objective's key results, never the store's
    finally:
        engine.dispose()


def test_json_is_written_as_objectives_arrive() -> None:
    out = io.StringIO()
    written_before: list[int] = []

    def objectives() -> Iterator[ObjectiveView]:
        for i in range(3):
            written_before.append(len(out.getvalue()))
            yield ObjectiveView(
                f"o{i}", "t", "c", None, None, "no_data", Decimal("0.5"), key_results=[]
            )

    write_status_json(out, objectives(), [])
    assert written_before[0] < written_before[1] < written_before[2]
    assert len(json.loads(out.getvalue())["objectives"]) == 3


def okrsync(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "okrsync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OKRSYNC_DATABASE_URL": url, "COLUMNS": "200"},
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    engine = make_engine(url)
    upgrade(engine)
    fill(engine, objectives=6, per_objective=3)
    try:
        yield url, engine
    finally:
        engine.dispose()


def test_cli_status_json_and_its_filters(sqlite_store: tuple[str, Engine]) -> None:
    url, _ = sqlite_store
    done = okrsync(url, "status", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [o["id"] for o in document["objectives"]] == [f"o{i:04d}" for i in range(6)]
    assert document["connections"][0]["status"] == "failing"
    done = okrsync(url, "status", "--json", "--owner", "eng", "--status", "no_data")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["objectives"]
    assert shown and {o["owner"] for o in shown} == {"eng"}
    assert {kr["status"] for o in shown for kr in o["key_results"]} == {"no_data"}


def test_cli_status_table_with_filters(sqlite_store: tuple[str, Engine]) -> None:
    url, _ = sqlite_store
    done = okrsync(url, "status", "--cycle", "2027-Q1")
    assert done.returncode == 0, done.stderr
    assert "(o0000, 2027-Q1)" in done.stdout and "(o0004, 2027-Q1)" in done.stdout
    assert "2026-Q4" not in done.stdout
    assert "connection warehouse (sql): failing" in done.stdout
    done = okrsync(url, "status", "--owner", "nobody")
    assert done.returncode == 0, done.stderr
    assert "no objective matches these filters" in done.stdout


def test_cli_status_rejects_an_unknown_status(sqlite_store: tuple[str, Engine]) -> None:
    url, _ = sqlite_store
    done = okrsync(url, "status", "--status", "sideways")
    assert done.returncode == 2
    assert "unknown status: sideways" in done.stderr


def test_cli_status_on_a_missing_store_says_so(tmp_path: Path) -> None:
    done = okrsync(f"sqlite:///{tmp_path / 'none.db'}", "status")
    assert done.returncode == 0, done.stderr
    assert "nothing in the store yet" in done.stdout
    done = okrsync(f"sqlite:///{tmp_path / 'none.db'}", "status", "--json")
    assert json.loads(done.stdout) == {"objectives": [], "connections": []}
    assert not (tmp_path / "none.db").exists()


def test_a_reader_that_stops_early_ends_the_stream_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        fill(engine, objectives=150, per_objective=5)  # far more than a pipe's buffer
    finally:
        engine.dispose()
    for args in (["status", "--json"], ["status"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "okrsync", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "OKRSYNC_DATABASE_URL": url},
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(200)
        proc.stdout.close()  # like `| head -c 200`
        errors = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
        assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
