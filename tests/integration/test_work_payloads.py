"""A key result's mirror payload carries its linked work (issue 15): the counts by state and the
items done since the state the mirror showed before. Real sync passes on SQLite and PostgreSQL,
pushed by the dispatcher to the webhook receiver fake over a loopback socket."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlmodel import col, select

from connectors.webhook.receiver import receiver_app
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.outbox import scheduled
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow
from tests.integration.api_support import CONFIG
from tests.integration.work_support import insert_items, item

DIGEST = """\
    mirrors: [{connection: receiver, path: /digest}]
    key_results:
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 12, 9, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


async def test_payloads_carry_the_work_done_since_the_state_the_mirror_shows(
    tmp_path: Path, database_url: str
) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO deals DEFAULT VALUES")
    clock = Clock()
    t0 = clock.now
    receiver = receiver_app()
    with SandboxServer(receiver, name="receiver") as server:
        text = (
            CONFIG.replace("WAREHOUSE", str(warehouse))
            .replace("http://127.0.0.1:9/okr", server.url)
            .replace("    key_results:\n", DIGEST, 1)
        )
        registry = load_registry()
        config = load_config_text(text, registry.connectors)
        settings = Settings(database_url=SecretStr(database_url))
        app = App.open(settings, config=config, registry=registry, clock=clock)
        try:
            app.apply_definitions()

            def received() -> dict[str, Any]:
                return {d.path: d.body for d in receiver.state.receiver.received}

            await app.sync.run_once()
            first = received()
            assert set(first) == {"/", "/digest"}, first
            assert "work" not in first["/"]  # no work linked yet: no summary
            assert "work" not in first["/digest"]["key_results"][0]

            linked = t0 - timedelta(days=30)
            insert_items(
                app.engine,
                [
                    item("OKR-1", "done", linked_at=linked, done_at=t0 - timedelta(days=2)),
                    item("OKR-2", "done", linked_at=linked, done_at=t0 + timedelta(minutes=10)),
                    item("OKR-3", "in_progress", linked_at=linked),
                    item("OKR-4", "todo", linked_at=linked),
                    item("OKR-5", "todo", linked_at=linked),
                    item("OKR-6", "done", linked_at=linked, done_at=t0, unlinked_at=t0),
                ],
            )
            clock.now = t0 + timedelta(hours=1)
            with sqlite3.connect(warehouse) as db:
                db.execute("INSERT INTO deals DEFAULT VALUES")
            receiver.state.receiver.received.clear()
            await app.sync.run_once()
            second = received()

            # a mirror's own schedule queues the current state too, with its work
            objective = app.config.objective("o")
            (mirror,) = app.config.key_result("deals").mirrors
            cycle = app.config.cycles[objective.cycle]
            with session_scope(app.engine) as session:
                assert scheduled(session, mirror, objective, cycle, clock.now, clock.now)
            with session_scope(app.engine) as session:
                newest = session.exec(
                    select(DeliveryRow)
                    .where(DeliveryRow.mirror_key == mirror.key)
                    .order_by(col(DeliveryRow.seq).desc())
                ).first()
                assert newest is not None
                ticked = newest.payload["work"]
        finally:
            await app.aclose()
    work = second["/"]["work"]
    assert (work["todo"], work["in_progress"], work["done"]) == (2, 1, 2)
    # OKR-1 was done before the first push was queued: the mirror was told then (had it been
    # linked); OKR-2 since; OKR-6 left its query
    assert [i["key"] for i in work["done_recently"]] == ["OKR-2"]
    assert work["done_recently"][0]["url"] == "https://tracker.example/browse/OKR-2"
    assert work["done_recently_total"] == 1
    assert datetime.fromisoformat(work["done_since"]) == t0
    assert second["/digest"]["key_results"][0]["work"] == work
    # queued after the second push was shown: nothing done since then
    assert (ticked["done"], ticked["done_recently"], ticked["done_recently_total"]) == (2, [], 0)
    assert datetime.fromisoformat(ticked["done_since"]) == t0 + timedelta(hours=1)
