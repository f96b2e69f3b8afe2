"""The dashboard's cost per page does not grow with the store: statements counted, bytes bounded.

The store is bulk-loaded as the dashboard benchmark does (``benchmarks.dashboard_bench``): ten key
results per objective, fifty owners, a dozen values per key result, one running cycle. Mechanisms
are judged, not wall-clock: the SQL statements each page sends (a SQLAlchemy event listener) and
its size in bytes.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from benchmarks.dashboard_bench import CYCLE, NOW, OWNERS, count_statements, load_store
from okrsync.api.dashboard import KR_PAGE_SIZE, PAGE_SIZE, dashboard_routes
from okrsync.store.db import make_engine

PG_URL = os.environ.get("OKRSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

PATHS = (
    "/",
    "/?page=2",
    "/?owner=team3",
    "/?status=off_track",
    "/?q=objective%201&status=on_track&owner=team1",
    "/objectives/o00000",
    "/objectives/o00000?page=2&limit=3",
)

Served = tuple[TestClient, Engine]


@pytest.fixture(params=["sqlite", "postgresql"])
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """A factory of dashboards, each over a fresh store holding ``size`` key results."""
    engines: list[Engine] = []
    schemas: list[str] = []
    admin = create_engine(PG_URL) if request.param == "postgresql" else None

    def make(size: int, history: int = 12, per_objective: int = 10) -> Served:
        if admin is None:
            url = f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
        else:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            schemas.append(schema)
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        engines.append(engine)
        load_store(engine, size, per_objective=per_objective, history=history)
        app = Starlette(routes=dashboard_routes(engine, lambda: NOW))
        return TestClient(app), engine

    try:
        yield make
    finally:
        for engine in engines:
            engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                for schema in schemas:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _get(client: TestClient, engine: Engine, path: str) -> tuple[int, str]:
    with count_statements(engine) as seen:
        response = client.get(path)
    assert response.status_code == 200, (path, response.text[:300])
    return len(seen), response.text


def test_statements_per_page_are_the_same_at_10_and_200_key_results(
    serve: Callable[..., Served],
) -> None:
    counts = {}
    for size in (10, 200):
        client, engine = serve(size)
        counts[size] = {path: _get(client, engine, path)[0] for path in PATHS}
    assert counts[10] == counts[200]
    assert max(counts[200].values()) <= 7, counts[200]  # 7: a page past the last one
    # and the same when one objective holds every key result
    client, engine = serve(200, per_objective=200)
    assert _get(client, engine, "/objectives/o00000")[0] == counts[10]["/objectives/o00000"]


def test_page_size_is_bounded_by_the_page_limit_not_the_store(
    serve: Callable[..., Served],
) -> None:
    small_client, small_engine = serve(PAGE_SIZE * 10, per_objective=5)  # 50 objectives
    client, engine = serve(3000, history=40)
    _, one_page = _get(small_client, small_engine, "/")
    _, overview = _get(client, engine, "/")
    _, biggest = _get(client, engine, "/?limit=100")
    _, objective = _get(client, engine, "/objectives/o00150")
    assert overview.count('class="obj-row"') == PAGE_SIZE
    # 6x the objectives and 12x the key results, pages of the same size (their rows differ only
    # in titles, figures and which status badges show)
    assert one_page.count('class="obj-row"') == PAGE_SIZE
    assert len(overview.encode()) < 1.1 * len(one_page.encode())
    assert len(overview.encode()) < 60_000
    assert biggest.count('class="obj-row"') == 100 and len(biggest.encode()) < 300_000
    assert objective.count('<svg class="burnup"') == 10 and len(objective.encode()) < 300_000
    assert "of 300 objectives" in overview and 'rel="next"' in overview


def test_an_objective_with_many_key_results_is_paged(serve: Callable[..., Served]) -> None:
    client, engine = serve(KR_PAGE_SIZE * 2 + 5, per_objective=1000)
    _, first = _get(client, engine, "/objectives/o00000")
    _, last = _get(client, engine, "/objectives/o00000?page=3")
    assert first.count('<svg class="burnup"') == KR_PAGE_SIZE
    assert last.count('<svg class="burnup"') == 5
    assert f"of {KR_PAGE_SIZE * 2 + 5}" in first and 'rel="next"' in first
    assert 'rel="prev"' in last and 'rel="next"' not in last


def _listed(page: str) -> set[str]:
    return set(re.findall(r'<h2><a href="/objectives/(o\d+)"', page))


def test_filters_return_the_right_objectives(serve: Callable[..., Served]) -> None:
    client, engine = serve(400)  # 40 objectives, each with its own owner (team0..team39)
    assert OWNERS > 40
    assert _listed(_get(client, engine, "/?owner=team3")[1]) == {"o00003"}
    # search is case-insensitive, on the title or the id: "Objective 1:", "Objective 1x:"
    found = _listed(_get(client, engine, "/?q=OBJECTIVE%201")[1])
    assert found == {"o00001", *(f"o{i:05d}" for i in range(10, 20))}
    assert _listed(_get(client, engine, "/?q=o00007")[1]) == {"o00007"}
    assert _listed(_get(client, engine, "/?q=%25")[1]) == set()  # LIKE wildcards are literal
    everything = _listed(_get(client, engine, "/?limit=100")[1])
    assert len(everything) == 40
    by_status = {}
    for status in ("on_track", "at_risk", "off_track", "no_data"):
        page = _get(client, engine, f"/?status={status}&limit=100")[1]
        by_status[status] = _listed(page)
        for oid in by_status[status]:  # each row listed carries the status asked for
            row = page[page.index(f'href="/objectives/{oid}"') :].split('class="obj-row"')[0]
            assert f'class="badge s-{status}"' in row
    # each objective is listed under exactly one status
    assert set().union(*by_status.values()) == everything
    assert sum(len(v) for v in by_status.values()) == len(everything)
    assert by_status["on_track"]


def test_one_objective_page_shows_its_key_results_and_burn_up(
    serve: Callable[..., Served],
) -> None:
    client, engine = serve(30, history=12)
    _, page = _get(client, engine, "/objectives/o00001")
    titles = re.findall(r"<h2>(Key result \d+)</h2>", page)
    assert titles == [f"Key result {i}" for i in range(10, 20)]
    svgs = re.findall(r'<svg class="burnup".*?</svg>', page, flags=re.S)
    assert len(svgs) == 10
    for svg in svgs:
        (points,) = re.findall(r'<polyline class="actual" points="([^"]*)"', svg)
        assert len(points.split()) == 12


async def test_a_page_being_read_does_not_hold_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The store read runs in a worker thread: while it is stuck, another route still answers."""
    import asyncio
    import threading

    import httpx
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from okrsync.store import dashboard_pages

    engine = make_engine(f"sqlite:///{tmp_path / 'loop.db'}")
    load_store(engine, 10)
    release = threading.Event()
    entered = threading.Event()
    real = dashboard_pages.cycle_page

    def stuck(*args: object, **kw: object) -> dashboard_pages.CyclePage:
        entered.set()
        assert release.wait(10)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(dashboard_pages, "cycle_page", stuck)

    async def ping(_: object) -> PlainTextResponse:
        return PlainTextResponse("pong")

    app = Starlette(routes=[*dashboard_routes(engine, lambda: NOW), Route("/ping", ping)])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = asyncio.create_task(client.get("/"))
            assert await asyncio.to_thread(entered.wait, 5)
            pong = await asyncio.wait_for(client.get("/ping"), 5)
            assert pong.text == "pong" and not page.done()
            release.set()
            assert (await page).status_code == 200
    finally:
        release.set()
        engine.dispose()


def test_status_counts_in_sql_equal_each_key_results_status(serve: Callable[..., Served]) -> None:
    """The overview counts statuses in SQL with floats; values at or next to a threshold, and
    non-finite ones, are settled exactly in Python: the counts equal ``status_for`` per row."""
    from collections import Counter
    from decimal import Decimal

    from sqlmodel import select

    from okrsync.domain.progress import KRKind
    from okrsync.domain.status import (
        AT_RISK_GAP,
        ON_TRACK_GAP,
        elapsed_fraction,
        status_for,
    )
    from okrsync.store import dashboard_pages
    from okrsync.store.db import session_scope
    from okrsync.store.tables import KeyResultRow

    _, engine = serve(120)
    elapsed = elapsed_fraction(CYCLE[1], CYCLE[2], NOW)
    tiny = Decimal("1e-20")
    edges = [
        elapsed - ON_TRACK_GAP,
        elapsed - ON_TRACK_GAP - tiny,
        elapsed - ON_TRACK_GAP + tiny,
        elapsed - AT_RISK_GAP,
        elapsed - AT_RISK_GAP - tiny,
        Decimal(1),
        Decimal(1) - tiny,
        Decimal("1.0000000000"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("1E+3"),
        None,
    ]
    kinds = ["increase", "decrease", "stay_above", "stay_below", "stay_between", "milestone"]
    with session_scope(engine) as session:
        rows = session.exec(select(KeyResultRow).order_by(KeyResultRow.id)).all()
        for i, row in enumerate(rows[: len(edges) * len(kinds)]):  # every kind at every edge
            row.kind = kinds[i // len(edges)]
            row.progress = edges[i % len(edges)]
            session.add(row)
    with session_scope(engine) as session:
        expected = Counter(
            status_for(KRKind(r.kind), r.progress, elapsed).value
            for r in session.exec(select(KeyResultRow))
        )
        page = dashboard_pages.cycle_page(session, NOW, dashboard_pages.Filters())
    assert {k: v for k, v in page.counts.items() if v} == dict(expected)


def test_the_status_filter_agrees_with_each_objectives_exact_roll_up(
    serve: Callable[..., Served],
) -> None:
    """Roll-ups for the status filter are summed in SQL as floats; an objective whose roll-up
    sits on a threshold is settled exactly, so the filter agrees with ``rollup`` everywhere."""
    from decimal import Decimal

    from sqlmodel import select

    from okrsync.domain.status import (
        AT_RISK_GAP,
        ON_TRACK_GAP,
        Weighted,
        elapsed_fraction,
        objective_status,
        rollup,
    )
    from okrsync.store import dashboard_pages
    from okrsync.store.db import session_scope
    from okrsync.store.tables import KeyResultRow

    _, engine = serve(100, per_objective=4)  # 25 objectives
    elapsed = elapsed_fraction(CYCLE[1], CYCLE[2], NOW)
    tiny = Decimal("1e-20")
    on_edge = [
        elapsed - ON_TRACK_GAP,
        elapsed - ON_TRACK_GAP - tiny,
        elapsed - AT_RISK_GAP,
        elapsed - AT_RISK_GAP - tiny,
        None,
        Decimal("Infinity"),
    ]
    with session_scope(engine) as session:
        rows = session.exec(select(KeyResultRow).order_by(KeyResultRow.id)).all()
        for i, row in enumerate(rows):
            o = i // 4
            if o < len(on_edge):  # every key result of objective o at the same edge value
                row.progress = on_edge[o]
            elif o == len(on_edge):
                row.weight = Decimal(0)  # weights summing to 0: no roll-up
            session.add(row)
    with session_scope(engine) as session:
        by_objective: dict[str, list[KeyResultRow]] = {}
        for row in session.exec(select(KeyResultRow)):
            by_objective.setdefault(row.objective_id, []).append(row)
        expected: dict[str, set[str]] = {}
        for oid, krs in by_objective.items():
            progress = rollup([Weighted(r.progress, r.weight) for r in krs])
            expected.setdefault(objective_status(progress, elapsed).value, set()).add(oid)
        for status in ("on_track", "at_risk", "off_track", "no_data"):
            page = dashboard_pages.cycle_page(
                session, NOW, dashboard_pages.Filters(status=status, limit=100)
            )
            assert {o.id for o in page.objectives} == expected.get(status, set()), status
            assert page.total == len(expected.get(status, set()))
            assert all(o.status == status for o in page.objectives)
