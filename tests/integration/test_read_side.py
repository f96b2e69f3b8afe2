"""The read side at scale, judged by mechanism: statements per request do not grow with the
number of key results, pages walk every item once, pages use their indexes, a current ETag
gets a 304, and ``/healthz`` answers while a store call of another request is held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, insert

from okrsync.store import views
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.tables import CycleRow, KeyResultRow, ObjectiveRow, RunRow
from tests.integration.api_support import TOKEN, api_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_OBJECTIVE = 5


def grow(engine: Engine, key_results: int, cycle: str = "2026-Q4", start: int = 0) -> None:
    """Objectives ``g0000…`` with five key results each, behind the config's objective ``o``;
    some with a value, some without, and one archived key result (never listed). ``start``: the
    key results already grown (a multiple of five)."""
    first = start // PER_OBJECTIVE
    objectives = key_results // PER_OBJECTIVE
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(ObjectiveRow),
            [
                {"id": f"g{i:04d}", "title": f"G{i}", "cycle_id": cycle, "position": 1 + i}
                for i in range(first, first + objectives)
            ],
        )
        rows = []
        for i in range(start, start + objectives * PER_OBJECTIVE):
            valued = i % 3 != 0
            rows.append(
                {
                    "id": f"k{i:05d}",
                    "objective_id": f"g{i // PER_OBJECTIVE:04d}",
                    "title": f"K{i}",
                    "kind": "increase",
                    "start": 0,
                    "target": 100,
                    "position": (PER_OBJECTIVE - i % PER_OBJECTIVE),  # not the id's order
                    "status": "on_track" if valued else "no_data",
                    "value": i % 100 if valued else None,
                    "progress": Decimal(i % 100) / 100 if valued else None,
                    "observed_at": now if valued else None,
                    "checked_at": now if valued else None,
                }
            )
        conn.execute(insert(KeyResultRow), rows)
        gone = [
            {
                "id": "archived",
                "objective_id": "g0000",
                "title": "gone",
                "kind": "increase",
                "status": "no_data",
                "archived_at": now,
            }
        ]
        if start == 0:
            conn.execute(insert(KeyResultRow), gone)


class Statements:
    """Counts the SQL statements an engine runs while ``counting`` is on."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if self.on:
            self.seen.append(statement)

    def count(self, call: Callable[[], httpx.Response]) -> tuple[int, httpx.Response]:
        self.seen.clear()
        self.on = True
        try:
            response = call()
        finally:
            self.on = False
        assert response.status_code in (200, 304), response.text
        return len(self.seen), response


PATHS = (
    "/api/v1/objectives?limit=5",
    "/api/v1/objectives?limit=5&cycle=2026-Q4",
    "/api/v1/objectives/g0001",
    "/api/v1/key-results?limit=25",
    "/api/v1/key-results/k00007",
    "/api/v1/key-results/deals/measurements?limit=5",
    "/api/v1/runs?limit=5",
    "/api/v1/deliveries?limit=5",
    "/api/v1/connections",
    "/metrics",
)


def _statements(http: httpx.Client, counter: Statements, total: int) -> dict[str, int]:
    counts = {}
    for path in PATHS:
        counts[path], _ = counter.count(lambda p=path: http.get(p))  # type: ignore[misc]
    # the second page as well: a cursor costs no more than the first
    cursor = http.get("/api/v1/key-results?limit=5").json()["next_cursor"]
    counts["key-results page 2"], page = counter.count(
        lambda: http.get("/api/v1/key-results", params={"limit": 5, "cursor": cursor})
    )
    assert page.json()["total"] == total
    return counts


def test_statements_per_request_do_not_grow_with_the_key_results(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        counter = Statements(svc.app.engine)
        grow(svc.app.engine, 10)
        small = _statements(http, counter, 11)
        grow(svc.app.engine, 190, start=10)
        large = _statements(http, counter, 201)
    assert small == large
    # and they are few: the read stamp, the count, the page, its key results, the cycles
    assert max(small.values()) <= 6, small


def _walk(http: httpx.Client, path: str, field: str, limit: int) -> tuple[list[Any], set[int]]:
    items: list[Any] = []
    totals = set()
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = http.get(path, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body[field]) <= limit
        items += body[field]
        totals.add(body["total"])
        if body["next_cursor"] is None:
            return items, totals
        params["cursor"] = body["next_cursor"]


def test_pages_walk_every_item_once_in_the_order_of_the_status_view(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        grow(svc.app.engine, 200)
        for value in range(5):
            done = http.post(
                "/api/v1/key-results/deals/check-ins", json={"value": 10 + value}, headers=AUTH
            )
            assert done.status_code == 201, done.text
        with session_scope(svc.app.engine) as session:
            order = views.status_view(session, svc.app.clock())
            for i in range(5):  # runs that started at the same instant: the id breaks the tie
                session.add(
                    RunRow(
                        id=f"tie{i}", trigger="manual", started_at=datetime(2026, 1, 1, tzinfo=UTC)
                    )
                )
        whole = [(o.id, kr.id) for o in order for kr in o.key_results]

        krs, totals = _walk(http, "/api/v1/key-results", "key_results", 7)
        assert [(kr["objective"], kr["id"]) for kr in krs] == whole
        assert totals == {201}
        first = http.get("/api/v1/key-results/k00007").json()
        assert first == next(kr for kr in krs if kr["id"] == "k00007")

        objectives, totals = _walk(http, "/api/v1/objectives", "objectives", 3)
        assert [o["id"] for o in objectives] == [o.id for o in order]
        assert totals == {41}
        assert [kr["id"] for kr in objectives[1]["key_results"]] == [
            kr.id for kr in order[1].key_results
        ]
        one = http.get("/api/v1/objectives/g0003").json()
        listed = next(o for o in objectives if o["id"] == "g0003")
        assert Decimal(one.pop("elapsed")) >= Decimal(listed.pop("elapsed"))  # time goes on
        assert one == listed

        measurements, totals = _walk(
            http, "/api/v1/key-results/deals/measurements", "measurements", 2
        )
        ids = [m["id"] for m in measurements]
        assert len(ids) == len(set(ids)) == 6 and totals == {6}
        runs, _ = _walk(http, "/api/v1/runs", "runs", 2)
        assert sorted(r["id"] for r in runs if r["id"].startswith("tie")) == [
            f"tie{i}" for i in range(5)
        ]
        assert len({r["id"] for r in runs}) == len(runs) == 6
        deliveries, totals = _walk(http, "/api/v1/deliveries", "deliveries", 2)
        assert [d["id"] for d in deliveries] == sorted((d["id"] for d in deliveries), reverse=True)
        assert totals == {len(deliveries)} and len(deliveries) >= 6
        cycles, _ = _walk(http, "/api/v1/cycles", "cycles", 1)
        connections, _ = _walk(http, "/api/v1/connections", "connections", 1)
        assert [c["id"] for c in cycles] == ["2026-Q4"]
        assert [c["name"] for c in connections] == ["receiver", "warehouse"]

        cursor = http.get("/api/v1/objectives", params={"limit": 1}).json()["next_cursor"]
        for bad in ("nonsense", cursor):  # another list's cursor is no cursor here
            refused = http.get("/api/v1/key-results", params={"cursor": bad})
            assert refused.status_code == 400
            assert "cursor" in refused.json()["detail"]


def test_a_current_etag_gets_a_304_until_something_is_recorded(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        moment = svc.ctx.clock()
        svc.ctx.clock = lambda: moment  # an ETag holds within its minute: none ends in the test
        counter = Statements(svc.app.engine)
        for path in ("/api/v1/key-results/deals", "/api/v1/objectives", "/api/v1/key-results"):
            first = http.get(path)
            etag = first.headers["etag"]
            assert etag.startswith('W/"')
            assert first.headers["last-modified"].endswith("GMT")
            statements, again = counter.count(
                lambda p=path, e=etag: http.get(p, headers={"If-None-Match": e})  # type: ignore[misc]
            )
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == etag
            assert statements == 1  # the read stamp only: the page is not built
            listed = http.get(path, headers={"If-None-Match": f'"other", {etag}'})
            assert listed.status_code == 304
            assert http.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
        star = {"If-None-Match": "*"}  # matches what exists, and nothing else
        assert http.get("/api/v1/key-results/deals", headers=star).status_code == 304
        assert http.get("/api/v1/key-results/nope", headers=star).status_code == 404
        assert http.get("/api/v1/objectives/nope", headers=star).status_code == 404
        etag = http.get("/api/v1/key-results/deals").headers["etag"]
        checked = http.post("/api/v1/key-results/deals/check-ins", json={"value": 9}, headers=AUTH)
        assert checked.status_code == 201
        changed = http.get("/api/v1/key-results/deals", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.json()["value"] == "9"
        assert changed.headers["etag"] != etag
        # another page of the same list is another answer
        one = http.get("/api/v1/key-results", params={"limit": 1}).headers["etag"]
        assert one != http.get("/api/v1/key-results").headers["etag"]


@contextmanager
def held(engine: Engine, marker: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Holds the first statement containing ``marker`` until released: (entered, release)."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if marker in statement and not entered.is_set():
            entered.set()
            release.wait(30)

    event.listen(engine, "before_cursor_execute", hold)
    try:
        yield entered, release
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", hold)


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/api/v1/key-results", "JOIN objectives"),
        ("/api/v1/objectives/o", "FROM key_results"),
        ("/metrics", "FROM runs"),
        ("/readyz", "SELECT 1"),
    ],
)
def test_healthz_answers_while_a_store_call_is_held(tmp_path: Path, path: str, marker: str) -> None:
    """Ordering, not milliseconds: ``/healthz`` is answered while the other request's statement
    is still held, so that request's store work does not occupy the event loop."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with api_service(tmp_path, url) as svc, httpx.Client(base_url=svc.url, timeout=20) as http:
        events: list[str] = []
        with held(svc.app.engine, marker) as (entered, release):
            slow = threading.Thread(
                target=lambda: events.append(f"slow {http.get(path).status_code}")
            )
            slow.start()
            assert entered.wait(10), "the slow statement never ran"
            health = http.get("/healthz", timeout=10)
            events.append(f"healthz {health.status_code}")
            release.set()
            slow.join(20)
        assert events[0] == "healthz 200"
        assert events[1].startswith("slow ")


def test_pages_walk_their_indexes(tmp_path: Path) -> None:
    """SQLite's plans for a page past a cursor: index searches, no scan of the big tables."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(CycleRow),
            [{"id": "2026-Q4", "start": date(2026, 10, 1), "end": date(2026, 12, 31)}],
        )
    grow(engine, 2000)
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    now = datetime(2026, 11, 15, tzinfo=UTC)
    with session_scope(engine) as session:
        views.key_results_page(session, now, limit=50, after_key=(200, "g0199", 2, "k00997"))
        views.objectives_page(session, now, limit=50, after_key=(200, "g0199"), cycle="2026-Q4")
        views.objectives_page(session, now, limit=50, after_key=(200, "g0199"))
        views.key_result_view(session, now, "k00997")
    event.remove(engine, "before_cursor_execute", keep)
    plans = {}
    with engine.connect() as conn:
        for statement, parameters in seen:
            if "count(*)" in statement or "FROM cycles\n" in statement + "\n":
                continue  # the total is counted; the cycles are a handful
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans[statement] = " | ".join(str(r[-1]) for r in rows)
    engine.dispose()
    assert len(plans) >= 5, plans  # both objective pages read their key results alike
    for statement, plan in plans.items():
        assert "SCAN key_results" not in plan and "SCAN objectives" not in plan, (statement, plan)
    joined = " ".join(plans.values())
    for index in ("ix_objectives_position", "ix_objectives_cycle_position"):
        assert index in joined


def test_answers_are_written_item_by_item_as_json_response_would() -> None:
    """The piecewise writer of big pages makes the bytes ``JSONResponse`` made, redacted."""
    from types import SimpleNamespace

    from starlette.responses import JSONResponse

    from okrsync.api import models as m
    from okrsync.api.answers import answer
    from okrsync.redaction import Redactor

    secret = "s3cret-token-0123456789"
    ctx: Any = SimpleNamespace(redactor=Redactor([secret]))
    when = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    kr = m.KeyResult(
        id="k",
        objective="o",
        title=f"Ünïcode “quotes” and {secret}",
        kind="increase",
        unit=None,
        value="1.50",
        start="0",
        target="10",
        progress="0.15",
        status="off_track",
        stale=False,
        observed_at=when,
        checked_at=None,
        last_error=f"HTTP 401 with {secret}",
    )
    models: list[Any] = [
        m.KeyResultList(key_results=[kr, kr], total=2, next_cursor=None),
        m.KeyResultList(key_results=[], total=0, next_cursor="abc"),
        m.ObjectiveList(
            objectives=[
                m.Objective(
                    id="o",
                    title="O",
                    cycle="c",
                    owner=None,
                    progress=None,
                    status="no_data",
                    elapsed="0.5",
                    key_results=[kr],
                )
            ],
            total=1,
            next_cursor="x",
        ),
        m.MeasurementList(key_result="k", measurements=[], total=0, next_cursor=None),
        kr,
    ]
    for model in models:
        written = answer(ctx, model)
        expected = JSONResponse(ctx.redactor.redact_value(model.model_dump(mode="json")))
        assert written.body == expected.body
        assert written.headers["content-type"] == expected.headers["content-type"]
        assert secret.encode() not in written.body


def test_the_read_side_benchmark_runs_and_reports_its_own_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small run of ``benchmarks/read_side.py``: every request answered, the markdown made from
    the JSON's figures."""
    from benchmarks import read_side

    monkeypatch.setattr(read_side, "HEALTH_SAMPLES", 20)
    result = read_side.run(60, 2, None, "smoke", True)
    figures = result["stores"]["sqlite"]
    assert figures["requests"]["one key result"]["statements"] == 2
    assert figures["requests"]["one key result, If-None-Match (304)"]["status"] == 304
    assert figures["requests"]["/metrics"]["statements"] == 5
    assert figures["healthz_under_load"]["samples"] == 20
    text = read_side.markdown(result)
    assert f"| sqlite | `/metrics` | 200 | {figures['requests']['/metrics']['p50_ms']} |" in text
