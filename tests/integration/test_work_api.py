"""``GET /api/v1/key-results/{id}/work`` and ``/objectives/{id}/work`` over a real socket, on
SQLite and PostgreSQL, against work rows written as the work refresh writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from okrsync.domain.work_window import week_start
from tests.integration.api_support import api_service
from tests.integration.test_read_side import Statements
from tests.integration.work_support import insert_items, item, many


def _walk(http: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of a list, a page at a time; the totals each page gave."""
    items: list[dict[str, Any]] = []
    totals = set()
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = http.get(path, params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        totals.add(body["total"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, totals


def test_work_of_a_key_result_and_its_objective_paged_counted_and_filtered(
    tmp_path: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    monday = week_start(now)
    linked = monday - timedelta(days=20)
    rows = [
        item("OKR-13", "in_progress", linked_at=linked),
        item("OKR-14", "todo", linked_at=linked),
        item("OKR-15", "done", linked_at=linked, done_at=monday),  # this week
        item("OKR-16", "done", linked_at=linked, done_at=monday - timedelta(seconds=1)),
        item("acme/shop#42", "todo", connection="github", linked_at=linked),
        item("ENG-7", "in_progress", connection="linear", linked_at=linked),
        item("OKR-9", "done", linked_at=linked, done_at=monday, unlinked_at=monday),
        item("OKR-1", "todo", key_result=None, objective="o", linked_at=linked),
    ]
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        insert_items(svc.app.engine, rows)

        items, totals = _walk(http, "/api/v1/key-results/deals/work", limit=2)
        assert totals == {6}
        keys = [(i["connection"], i["key"]) for i in items]
        assert keys == sorted(keys) and len(keys) == 6  # each once, in the tracker's key order
        assert ("jira", "OKR-9") not in keys and ("jira", "OKR-1") not in keys
        first = http.get("/api/v1/key-results/deals/work").json()
        assert first["key_result"] == "deals"
        summary = first["summary"]
        assert (summary["todo"], summary["in_progress"], summary["done"]) == (2, 2, 2)
        assert summary["total"] == 6 and summary["done_this_week"] == 1
        okr15 = next(i for i in first["items"] if i["key"] == "OKR-15")
        assert okr15 == {
            "connection": "jira",
            "key": "OKR-15",
            "title": "Do OKR-15",
            "state": "done",
            "url": "https://tracker.example/browse/OKR-15",
            "assignee": "ana",
            "labels": ["checkout-v2"],
            "updated_at": okr15["updated_at"],
            "done_at": monday.isoformat().replace("+00:00", "Z"),
            "first_linked_at": linked.isoformat().replace("+00:00", "Z"),
            "unlinked_at": None,
            "key_result": "deals",
            "objective": None,
        }

        with_gone, _ = _walk(http, "/api/v1/key-results/deals/work", limit=4, unlinked="true")
        gone = [i for i in with_gone if i["unlinked_at"] is not None]
        assert [i["key"] for i in gone] == ["OKR-9"] and len(with_gone) == 7
        done = http.get("/api/v1/key-results/deals/work", params={"state": "done"}).json()
        assert sorted(i["key"] for i in done["items"]) == ["OKR-15", "OKR-16"]
        assert done["summary"]["total"] == 6  # the summary counts every linked item

        objective, totals = _walk(http, "/api/v1/objectives/o/work", limit=3)
        assert totals == {7}  # its own entry's item and its key result's
        assert {i["key"] for i in objective} == {k for _, k in keys} | {"OKR-1"}
        assert http.get("/api/v1/objectives/o/work").json()["objective"] == "o"

        for path in ("/api/v1/key-results/nope/work", "/api/v1/objectives/nope/work"):
            answer = http.get(path)
            assert answer.status_code == 404 and answer.json()["detail"] == "nope"
        bad = http.get("/api/v1/key-results/deals/work", params={"state": "closed"})
        assert bad.status_code == 400
        foreign = http.get("/api/v1/key-results?limit=1").json()["next_cursor"]
        wrong = http.get("/api/v1/key-results/deals/work", params={"cursor": foreign})
        assert wrong.status_code == 400 and "cursor" in wrong.json()["detail"]


def test_statements_per_work_page_do_not_grow_with_the_items(
    tmp_path: Path, database_url: str
) -> None:
    linked = datetime(2026, 10, 5, tzinfo=UTC)
    paths = (
        "/api/v1/key-results/deals/work?limit=5",
        "/api/v1/objectives/o/work?limit=5",
        "/api/v1/key-results/deals/work?limit=5&unlinked=true&state=done",
    )
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        counter = Statements(svc.app.engine)
        insert_items(svc.app.engine, many("deals", 9, linked))
        small = {p: counter.count(lambda p=p: http.get(p))[0] for p in paths}  # type: ignore[misc]
        insert_items(svc.app.engine, many("deals", 600, linked, start=9))
        large = {p: counter.count(lambda p=p: http.get(p))[0] for p in paths}  # type: ignore[misc]
        cursor = http.get(paths[0]).json()["next_cursor"]
        path = "/api/v1/key-results/deals/work"
        second, page = counter.count(lambda: http.get(path, params={"limit": 5, "cursor": cursor}))
    assert small == large, (small, large)
    assert max(large.values()) <= 4 and second <= 4, large  # owner, count, page, summary
    assert page.json()["total"] == 609
