"""End to end with the Jira fake: the daemon lists the launch epic's children and backlinks them,
then a signed Jira webhook brings a status change into the store within 2 seconds, by an
incremental read. The daemon and the API share one loop, as under ``okrsync run``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.fake.data import JiraData
from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.server import HttpServer, bind
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.engine.daemon import Daemon, stop_within
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import WorkItemRow

SECRET = "jira-hook-secret"
GLOBAL_ID = "okrsync:key-result:launch_epic"


@pytest.fixture
def jira() -> Iterator[tuple[SandboxServer, JiraData]]:
    app = jira_app(deployment="cloud")
    with SandboxServer(app, name="jira") as server:
        yield server, app.state.jira


def config(url: str) -> str:
    return f"""\
version: 1
connections:
  jira: {{type: jira, url: "{url}", email: {DEFAULT_EMAIL}, api_token: {DEFAULT_API_TOKEN}}}
cycles:
  - {{id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  launch_done: {{connection: jira, aggregate: done_ratio, parent: OKR-12, schedule: every 1h}}
objectives:
  - id: launch
    title: Launch checkout v2
    cycle: 2026-Q4
    key_results:
      - id: launch_epic
        title: Finish the launch epic
        value: "launch_done * 100"
        kind: increase
        start: 0
        target: 100
        work:
          - {{connection: jira, jql: "parent = OKR-12", backlink: true}}
"""


def states(app: App) -> dict[str, str]:
    with session_scope(app.engine) as session:
        rows = session.exec(select(WorkItemRow).where(col(WorkItemRow.unlinked_at).is_(None)))
        return {row.item_key: row.state for row in rows}


def searches(server: SandboxServer) -> list[str]:
    return [
        str(r.json_body().get("jql", "")) for r in server.requests if r.path.endswith("/search/jql")
    ]


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, what
        await asyncio.sleep(0.02)


def test_the_daemon_lists_and_backlinks_the_epic_and_a_webhook_updates_it(
    tmp_path: Path, jira: tuple[SandboxServer, JiraData]
) -> None:
    server, data = jira
    children = sorted(key for key, issue in data.issues.items() if issue.parent == "OKR-12")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "OKRSYNC_HOOK_SECRET_JIRA").write_text(SECRET)
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path / 'okrsync.db'}"),
        secrets_dir=secrets,
        public_read=True,  # reads without a token; sign-in has its own tests
    )
    registry = load_registry()
    app = App.open(settings, config=load_config_text(config(server.url), registry.connectors))
    app.apply_definitions()

    def title(key: str) -> str:
        with data.lock:
            link = data.issues[key].remote_links.get(GLOBAL_ID, {})
        return str(link.get("object", {}).get("title", ""))

    async def scenario() -> None:
        stop = asyncio.Event()
        daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
        running = asyncio.create_task(daemon.run(stop))
        http = HttpServer(build_app(ApiContext.from_app(app, daemon)), bind("127.0.0.1", 0))
        await http.start()
        host, port = http.address
        try:
            await until(lambda: sorted(states(app)) == children, 5, "the epic was not listed")
            await until(
                lambda: all(GLOBAL_ID in data.issues[k].remote_links for k in children),
                5,
                "the items were not backlinked",
            )
            assert list(states(app).values()).count("done") == 6
            # the metric's value (6 of 8 done) reaches the links once recorded
            await until(lambda: "(75%" in title(children[0]), 5, "the links missed the value")
            reads = len(searches(server))
            await asyncio.sleep(0.5)
            assert len(searches(server)) == reads  # nothing due: no reads in a loop

            todo = next(k for k in children if states(app)[k] != "done")
            with data.lock:
                data.issues[todo].status = "Done"
                data.issues[todo].updated = datetime.now(UTC)
            server.reset()
            body = b'{"webhookEvent": "jira:issue_updated"}'
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                answer = await client.post(
                    "/hooks/jira", content=body, headers={"X-Hub-Signature": signature}
                )
            assert answer.status_code == 202, answer.text
            await until(lambda: states(app)[todo] == "done", 2, "the webhook's change is late")
            assert time.monotonic() - started < 2
            jql = searches(server)
            # the webhook's read of the entry: one search, which for an entry of one page is a
            # full read answering both what changed and what left (work_refresh.reconcile_in_full)
            assert jql.count("parent = OKR-12") == 1, jql
            # the same webhook re-ran the metric (7 of 8): the links follow, in place
            await until(lambda: "(88%" in title(todo), 5, "the links missed the new value")
            assert all(len(data.issues[k].remote_links) == 1 for k in children)
        finally:
            stop.set()
            await http.stop()
            await stop_within(running, 10)
            await app.aclose()

    asyncio.run(scenario())
