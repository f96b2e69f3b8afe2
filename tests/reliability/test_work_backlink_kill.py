"""SIGKILL while backlinking: after a restart every linked Jira issue carries exactly one link.

``okrsync sync`` reads the launch epic's children from the Jira fake and puts a remote link on
each. The fake holds its answer to the second link request: the link is stored at Jira, but the
process never hears so and has not noted it. It is killed with SIGKILL right then. The next
run finds that item without a noted link, puts it again (the same ``globalId``, so
Jira replaces it) and notes every link: one per issue, none missing, none doubled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.fake.data import JiraData
from okrsync.app import App
from okrsync.engine.work_sync import WorkReport, WorkSync
from okrsync.sandbox import SandboxServer
from okrsync.settings import Settings

REPO = Path(__file__).resolve().parents[2]
GLOBAL_ID = "okrsync:key-result:launch_epic"


class HoldSecondLink:
    """Lets the fake store the second remote link, then keeps its answer until released."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.links = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_link = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/remotelink")
        )
        if not is_link:
            await self.app(scope, receive, send)
            return
        self.links += 1
        if self.links != 2:
            await self.app(scope, receive, send)
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)  # stored at "Jira" now
        self.holding.set()
        await asyncio.to_thread(self.release.wait, 60)
        for message in answer:
            await send(message)


@pytest.fixture
def jira() -> Iterator[tuple[SandboxServer, HoldSecondLink, JiraData]]:
    app = jira_app(deployment="cloud")
    held = HoldSecondLink(app)
    with SandboxServer(held, name="jira") as server:
        yield server, held, app.state.jira
        held.release.set()


def config(url: str) -> str:
    return f"""\
version: 1
connections:
  jira:
    type: jira
    url: "{url}"
    email: {DEFAULT_EMAIL}
    api_token: {DEFAULT_API_TOKEN}
cycles:
  - {{id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  launch_done: {{connection: jira, aggregate: done_ratio, parent: OKR-12}}
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


def sync(path: Path, database: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env["OKRSYNC_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.Popen(
        [sys.executable, "-m", "okrsync", "sync", "--config", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def noted(database: Path) -> dict[str, str | None]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT item_key, backlink_ref FROM work_items WHERE unlinked_at IS NULL"
        ).fetchall()
    return dict(rows)


@pytest.mark.timeout(120)
def test_sigkill_while_backlinking_leaves_one_link_per_item(
    tmp_path: Path, jira: tuple[SandboxServer, HoldSecondLink, JiraData]
) -> None:
    server, held, data = jira
    children = sorted(key for key, issue in data.issues.items() if issue.parent == "OKR-12")
    assert len(children) == 8
    path = tmp_path / "okrsync.yaml"
    path.write_text(config(server.url))
    database = tmp_path / "okrsync.db"

    first = sync(path, database)
    try:
        assert held.holding.wait(60), "the second backlink was never asked for"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    linked = [key for key in children if data.issues[key].remote_links]
    assert len(linked) == 2  # both stored at Jira …
    refs = noted(database)
    assert sorted(refs) == children  # the read was committed before the links began
    # … the first noted (before the second was asked for), the second never
    assert sum(ref is not None for ref in refs.values()) == 1
    held.release.set()

    # the restart: a fresh process on the same store (in this one, to spare a second start-up)
    settings = Settings(database_url=SecretStr(f"sqlite:///{database}"), config=path)
    app = App.open(settings)

    async def restart() -> WorkReport:
        try:
            return await WorkSync.from_sync(app.sync).refresh(forced=True)
        finally:
            await app.aclose()

    report = asyncio.run(restart())
    assert report.errors == []
    assert report.backlinks_put == 7  # all but the one noted before the kill
    for key in children:
        links = data.issues[key].remote_links
        assert list(links) == [GLOBAL_ID], (key, links)  # exactly one, ours
    refs = noted(database)
    assert all(refs[key] == str(data.issues[key].remote_links[GLOBAL_ID]["id"]) for key in children)
    assert sum(data.remote_links_created.values()) == 8  # the repeat replaced, never added
