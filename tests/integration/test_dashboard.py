"""The dashboard over a real socket, against a store filled by real sync passes.

The store is populated the way production fills it (config → App → sync against a SQLite
warehouse) on SQLite and PostgreSQL. A headless Chromium then loads the pages at a laptop and a
phone viewport, checks the burn-up chart is drawn and that nothing overflows sideways, and keeps
screenshots in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from okrsync.api.dashboard import dashboard_routes
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings
from okrsync.store import views
from okrsync.store.db import make_engine, session_scope, upgrade
from tests.integration.work_support import insert_items, item

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYNCS = 6

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: 2026-Q3, start: 2026-07-01, end: 2026-09-30}
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals WHERE id > 0"}
  amount: {connection: warehouse, query: "SELECT COALESCE(SUM(amount), 0) FROM deals"}
  latency: {connection: warehouse, query: "SELECT 400 - 2 * COUNT(*) FROM deals"}
  uptime: {connection: warehouse, query: "SELECT 99.85"}
objectives:
  - id: revenue
    title: "<script>alert('x')</script> Grow new-business revenue & margin"
    cycle: 2026-Q4
    owner: sales
    key_results:
      - {id: bookings, title: Close 40 new deals, metric: deals, kind: increase,
         start: 0, target: 40, unit: deals}
      - {id: booked, title: Book $400k in new business, metric: amount, kind: increase,
         start: 0, target: 400000, unit: USD, stale_after: 12h}
  - id: platform
    title: Make the product fast and dependable
    cycle: 2026-Q4
    owner: platform-team
    key_results:
      - {id: p95, title: Cut p95 checkout latency, metric: latency, kind: decrease,
         start: 400, target: 250, unit: ms}
      - {id: uptime, title: Keep checkout available, metric: uptime, kind: stay_above,
         target: 99.9, unit: "%"}
  - id: hiring
    title: Hire the support team
    cycle: 2026-Q3
    owner: people
    key_results:
      - {id: hires, title: Five support hires, metric: deals, kind: increase, start: 0, target: 5}
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 10, 3, 9, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Store:
    url: str
    clock: Clock


async def populate(database_url: str, tmp_path: Path) -> Store:
    """``SYNCS`` sync passes a week apart, each after new deals were won: one value per pass."""
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY, amount INTEGER)")
    registry = load_registry()
    config = load_config_text(CONFIG.replace("WAREHOUSE", str(warehouse)), registry.connectors)
    clock = Clock()
    settings = Settings(database_url=SecretStr(database_url))
    for week in range(SYNCS):
        with sqlite3.connect(warehouse) as db:
            for _ in range(week + 2):
                db.execute("INSERT INTO deals (amount) VALUES (?)", (7000 + 900 * week,))
        app = App.open(settings, config=config, registry=registry, clock=clock)
        try:
            app.apply_definitions()
            await app.sync.run_once()
        finally:
            await app.aclose()
        clock.now += timedelta(days=7)
    clock.now -= timedelta(days=6)  # last confirmed a day ago: `booked` (12h) is stale
    return Store(database_url, clock)


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


def serve(store: Store) -> SandboxServer:
    engine = make_engine(store.url)
    return SandboxServer(Starlette(routes=dashboard_routes(engine, store.clock)), name="dashboard")


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> Store:
    return await populate(database_url, tmp_path)


async def test_the_overview_lists_objectives_with_their_key_results_counted(store: Store) -> None:
    with serve(store) as server:
        page = await get(server.url + "/")
        q3 = await get(server.url + "/?cycle=2026-Q3")
        unknown = await get(server.url + "/?cycle=1999")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # no scripts at all
    text = page.text
    for title in ("Grow new-business revenue", "Make the product fast"):
        assert title in text
    # collapsed by objective: key results are counted, their details live on the objective page
    assert "Close 40 new deals" not in text
    assert text.count("2 key results") == 2
    assert "Hire the support team" not in text  # another cycle
    assert 'aria-current="page">2026-Q4<' in text  # the cycle selector, today's cycle chosen
    assert "Hire the support team" in q3.text
    assert unknown.status_code == 404
    assert "On track" in text or "At risk" in text or "Off track" in text
    assert "1 Stale" in text  # `booked` is stale, counted on its objective's row
    assert 'role="progressbar"' in text
    assert 'href="/objectives/revenue"' in text
    assert "2 of 2 objectives" in text


async def test_the_objective_page_shows_its_key_results_with_provenance(store: Store) -> None:
    with serve(store) as server:
        page = await get(server.url + "/objectives/revenue")
    text = page.text
    assert page.status_code == 200
    assert "Close 40 new deals" in text and "Book $400k in new business" in text
    assert "Cut p95 checkout latency" not in text  # another objective
    # value vs target with its unit, status as words, staleness, provenance of the value
    assert "<strong>27 deals</strong>" in text  # 2 + 3 + ... + 7 deals after six passes
    assert "/ 40 deals" in text
    assert "On track" in text or "At risk" in text or "Off track" in text
    assert "Stale · " in text
    assert "Where this value came from" in text
    assert "SELECT COUNT(*) FROM deals WHERE id &gt; 0" in text
    assert "<dt>Connection</dt><dd>warehouse</dd>" in text
    assert 'role="progressbar"' in text


async def test_the_overview_filters_by_owner_status_and_search(store: Store) -> None:
    with serve(store) as server:
        by_owner = (await get(server.url + "/?owner=platform-team")).text
        by_search = (await get(server.url + "/?q=REVENUE")).text
        no_match = (await get(server.url + "/?q=nothing-like-this")).text
        paged = (await get(server.url + "/?limit=1&page=2")).text
        bad = await get(server.url + "/?status=%3Cb%3E")
        statuses = {
            status: (await get(server.url + f"/?status={status}")).text
            for status in ("on_track", "at_risk", "off_track", "no_data")
        }
    assert "Make the product fast" in by_owner and "Grow new-business" not in by_owner
    assert 'name="owner" list="owners" value="platform-team"' in by_owner
    assert '<option value="sales">' in by_owner  # the other owners stay on offer
    assert "Grow new-business" in by_search and "Make the product fast" not in by_search
    assert "No objectives match." in no_match and "none of 0 objectives" in no_match
    # page 2 of 1 per page: the second objective only, a link back, none onward
    assert "Make the product fast" in paged and "Grow new-business" not in paged
    assert 'rel="prev"' in paged and 'rel="next"' not in paged
    assert bad.status_code == 400 and "&lt;b&gt;" in bad.text and "<b>" not in bad.text
    # each objective is listed under exactly its own status
    for title in ("Grow new-business", "Make the product fast"):
        assert sum(title in text for text in statuses.values()) == 1


async def test_user_text_is_escaped(store: Store) -> None:
    with serve(store) as server:
        overview = (await get(server.url + "/")).text
        detail = (await get(server.url + "/objectives/revenue")).text
    for text in (overview, detail):
        assert "<script>" not in text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
        assert "revenue &amp; margin" in text
    # what a visitor types into the filters comes back escaped too
    with serve(store) as server:
        hostile = "%22%3E%3Cscript%3Ealert(1)%3C/script%3E"
        echoed = (await get(server.url + f"/?q={hostile}&owner={hostile}")).text
    assert "<script>" not in echoed
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in echoed


async def test_the_detail_page_draws_one_vertex_per_measurement(store: Store) -> None:
    engine = make_engine(store.url)
    with session_scope(engine) as session:
        recorded = {kr: len(views.history(session, kr)) for kr in ("bookings", "booked", "p95")}
    engine.dispose()
    assert recorded == {"bookings": SYNCS, "booked": SYNCS, "p95": SYNCS}
    with serve(store) as server:
        page = await get(server.url + "/objectives/revenue")
        platform = await get(server.url + "/objectives/platform")
    assert page.status_code == 200
    svgs = re.findall(r"<svg class=\"burnup\".*?</svg>", page.text, flags=re.S)
    assert len(svgs) == 2
    for svg in svgs:
        (points,) = re.findall(r'<polyline class="actual" points="([^"]*)"', svg)
        assert len(points.split()) == SYNCS
        assert '<line class="pace"' in svg
    # the decrease key result's pace line runs downhill (larger y is lower on screen)
    p95 = next(s for s in re.findall(r"<svg .*?</svg>", platform.text, re.S) if "latency" in s)
    pace = re.search(r'class="pace"[^>]*y1="([\d.]+)"[^>]*y2="([\d.]+)"', p95)
    assert pace is not None
    assert float(pace[2]) > float(pace[1])


async def test_unknown_objective_is_a_404_page(store: Store) -> None:
    with serve(store) as server:
        page = await get(server.url + "/objectives/%3Cb%3Enope")
    assert page.status_code == 404
    assert "There is no objective" in page.text and "&lt;b&gt;nope" in page.text


async def test_an_empty_store_says_what_to_run(database_url: str) -> None:
    engine = make_engine(database_url)
    routes = dashboard_routes(engine, lambda: datetime(2026, 10, 3, tzinfo=UTC))
    with SandboxServer(Starlette(routes=routes), name="dashboard") as server:
        bare = await get(server.url + "/")  # not even migrated
        upgrade(engine)
        empty = await get(server.url + "/")
        missing = await get(server.url + "/objectives/revenue")
    engine.dispose()
    for page in (bare, empty):
        assert page.status_code == 200
        assert "Nothing synced yet" in page.text and "okrsync sync" in page.text
    assert missing.status_code == 404


# --------------------------------------------------------------------------- in a real browser


def link_work(store: Store) -> None:
    """Work items on ``bookings`` as the work refresh writes them, long names included."""
    engine = make_engine(store.url)
    linked = datetime(2026, 10, 2, tzinfo=UTC)
    long_title = "Checkout v2: " + "retry the payment provider's idempotent capture " * 3
    insert_items(
        engine,
        [
            item("OKR-13", "in_progress", key_result="bookings", linked_at=linked),
            item("OKR-14", "todo", key_result="bookings", linked_at=linked),
            item(
                "acme-platform/checkout-service-with-a-long-name#4242",
                "done",
                key_result="bookings",
                connection="github",
                linked_at=linked,
                done_at=datetime(2026, 10, 20, 9, tzinfo=UTC),
            ),
            {
                **item(
                    "OKR-15",
                    "done",
                    key_result="bookings",
                    linked_at=linked,
                    done_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
                ),
                "title": long_title,
            },
        ],
    )
    engine.dispose()


VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Store:
    return await populate(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_pages_render_in_chromium_on_laptop_and_phone(sqlite_store: Store) -> None:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    link_work(sqlite_store)  # the key result's work panel must fit on a phone too
    with serve(sqlite_store) as server:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for device, (width, height) in VIEWPORTS.items():
                    for scheme in ("light", "dark"):
                        context = await browser.new_context(
                            viewport={"width": width, "height": height}, color_scheme=scheme
                        )
                        page = await context.new_page()
                        for name, path in (
                            ("overview", "/"),
                            ("objective", "/objectives/revenue"),
                            ("decrease", "/objectives/platform"),
                        ):
                            response = await page.goto(server.url + path)
                            assert response is not None and response.ok
                            if name != "overview":
                                chart = page.locator("svg.burnup").first
                                await chart.wait_for(state="visible")
                                box = await chart.bounding_box()
                                assert box is not None and box["width"] > 200
                                assert box["height"] > 80
                                assert box["x"] >= 0 and box["x"] + box["width"] <= width
                                await page.locator("details.prov-box").first.click()
                            overflow = await page.evaluate(
                                "document.scrollingElement.scrollWidth - window.innerWidth"
                            )
                            assert overflow <= 0, f"{name} overflows by {overflow}px on {device}"
                            await page.screenshot(
                                path=str(ARTIFACTS / f"dashboard-{name}-{device}-{scheme}.png"),
                                full_page=True,
                            )
                        await context.close()
            finally:
                await browser.close()
