"""Each key result's card on the dashboard lists its work and marks on its burn-up chart when the
linked items were done; the page's statement count does not grow with the items. Over a real
socket, on SQLite and PostgreSQL, with work rows written as the work refresh writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import update
from starlette.applications import Starlette

from benchmarks.dashboard_bench import count_statements
from okrsync.api.dashboard import dashboard_routes
from okrsync.sandbox import SandboxServer
from okrsync.store.db import make_engine, upgrade
from okrsync.store.tables import WorkItemRow
from okrsync.store.work_panels import ITEMS_SHOWN
from tests.integration.work_support import definitions, insert_items, item, many

NOW = datetime(2026, 11, 12, 15, tzinfo=UTC)  # a Thursday: the week began on Monday the 9th


def test_a_key_results_card_lists_its_work_and_marks_the_done_items(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    definitions(engine, ("deals", "quiet", "busy"))
    linked = datetime(2026, 10, 5, tzinfo=UTC)
    rows = [
        item("OKR-13", "in_progress", linked_at=linked),
        item("OKR-14", "todo", linked_at=linked),
        item("OKR-15", "done", linked_at=linked, done_at=datetime(2026, 11, 10, 9, tzinfo=UTC)),
        item("OKR-16", "done", linked_at=linked, done_at=datetime(2026, 10, 20, 9, tzinfo=UTC)),
        item("OKR-17", "done", linked_at=linked, done_at=datetime(2026, 10, 20, 17, tzinfo=UTC)),
        item("OKR-9", "done", linked_at=linked, done_at=NOW, unlinked_at=NOW),
    ]
    odd = item("<b>EVIL-1</b>", "todo", linked_at=linked, connection="github")
    odd["url"] = "javascript:alert(1)"
    odd["title"] = "<script>alert('x')</script>"
    insert_items(engine, [*rows, odd, *many("busy", ITEMS_SHOWN + 5, linked)])
    app = Starlette(routes=dashboard_routes(engine, lambda: NOW))
    with SandboxServer(app, name="dashboard") as server, count_statements(engine) as seen:
        page = httpx.get(f"{server.url}/objectives/o")
        assert page.status_code == 200, page.text
        statements = len(seen)
        html = page.text

        deals = html[html.index("<code>deals</code>") : html.index("<code>quiet</code>")]
        assert "<strong>Work:</strong> 3 done · 1 in progress · 2 to do" in deals
        assert "1 done this week" in deals
        assert '<a href="https://tracker.example/browse/OKR-13" rel="noopener noreferrer">' in deals
        assert "OKR-9" not in deals  # it left its query
        # a vendor's text is escaped and a url that is not a web address is never a link
        assert "javascript:" not in html and "<script>alert" not in html
        assert "&lt;b&gt;EVIL-1&lt;/b&gt;" in deals
        # in progress first, then to do, then done newest first
        listed = deals[deals.index('<section class="work"') :]
        order = [listed.index(k) for k in ("OKR-13", "OKR-14", "OKR-15", "OKR-17", "OKR-16")]
        assert order == sorted(order)
        # one mark per day an item was done, titled with the items
        marks = re.findall(r'<path class="done"[^>]*><title>([^<]*)</title>', deals)
        assert marks == [
            "2 work items done on 2026-10-20: OKR-16, OKR-17",
            "1 work item done on 2026-11-10: OKR-15",
        ]
        assert "work done</span>" in deals

        quiet = html[html.index("<code>quiet</code>") : html.index("<code>busy</code>")]
        assert "Work:" not in quiet and 'class="done"' not in quiet  # no work, nothing shown
        busy = html[html.index("<code>busy</code>") :]
        assert busy.count('class="w-state') == ITEMS_SHOWN
        assert f"all {ITEMS_SHOWN + 5} items (5 more)" in busy
        assert "/api/v1/key-results/busy/work" in busy

        # the page is read afresh: a state written now shows on the next load
        with engine.begin() as conn:
            conn.execute(
                update(WorkItemRow)
                .where(WorkItemRow.item_key == "OKR-13")
                .values(state="done", done_at=NOW)
            )
        again = httpx.get(f"{server.url}/objectives/o").text
        assert "<strong>Work:</strong> 4 done · 0 in progress · 2 to do" in again

        # many more items on the page's key results: the same statements
        insert_items(engine, many("quiet", 400, linked))
        seen.clear()
        assert httpx.get(f"{server.url}/objectives/o").status_code == 200
        assert len(seen) == statements <= 7, seen
    engine.dispose()
