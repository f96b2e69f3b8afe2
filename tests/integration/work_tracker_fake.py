"""A small work tracker for the core's tests: a plugin connector and its fake, over a real socket.

The core's work engine is vendor-neutral, so its tests drive it with a tracker of their own,
registered in-process as a third-party plugin would be: ``list_work`` asks ``GET /issues`` with
the query and, when incremental, ``updated_since``; ``list_work_keys`` asks ``GET /issue-keys``;
backlinks are ``PUT``/``DELETE /issues/{key}/links/{global_id}``, an upsert by the link's global
id (as Jira's remote links are), so a repeated put updates instead of adding. The vendors' own
connectors and fakes (Jira, GitHub, Linear) are tested beside them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from okrsync.sdk.connector import ConnectionConfig, Connector, ConnectorBase
from okrsync.sdk.http_connector import HttpConnection
from okrsync.sdk.models import CycleWindow
from okrsync.sdk.work import Backlink, WorkItem, WorkPages, WorkQuery, WorkState, WorkTracker


@dataclass
class Issue:
    key: str
    title: str
    parent: str
    state: str = "todo"
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    done_at: datetime | None = None


@dataclass
class TrackerData:
    """What the fake tracker holds; tests edit it between reads (under ``lock``)."""

    issues: dict[str, Issue] = field(default_factory=dict)
    links: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    link_puts: int = 0
    delay: float = 0.0  # seconds each issue search takes
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, title: str, parent: str, state: str = "todo") -> None:
        with self.lock:
            self.issues[key] = Issue(key, title, parent, state)

    def change(self, key: str, **changes: Any) -> None:
        with self.lock:
            issue = self.issues[key]
            for name, value in changes.items():
                setattr(issue, name, value)
            issue.updated = datetime.now(UTC)
            if issue.state == "done" and issue.done_at is None:
                issue.done_at = issue.updated


def tracker_app(data: TrackerData) -> Starlette:
    def matching(request: Request) -> list[Issue]:
        parent = request.query_params["q"]
        since_text = request.query_params.get("updated_since")
        since = datetime.fromisoformat(since_text) if since_text else None
        with data.lock:
            return [
                issue
                for issue in sorted(data.issues.values(), key=lambda i: i.key)
                if issue.parent == parent and (since is None or issue.updated >= since)
            ]

    async def issues(request: Request) -> Response:
        with data.lock:
            data.in_flight += 1
            data.most_in_flight = max(data.most_in_flight, data.in_flight)
        try:
            await asyncio.sleep(data.delay)
        finally:
            with data.lock:
                data.in_flight -= 1
        found = matching(request)
        return JSONResponse(
            {
                "issues": [
                    {
                        "key": i.key,
                        "title": i.title,
                        "state": i.state,
                        "url": f"https://tracker.example/{i.key}",
                        "updated": i.updated.isoformat(),
                        "done_at": i.done_at.isoformat() if i.done_at else None,
                    }
                    for i in found
                ]
            }
        )

    async def issue_keys(request: Request) -> Response:
        return JSONResponse({"keys": [i.key for i in matching(request)]})

    async def link(request: Request) -> Response:
        key, global_id = request.path_params["key"], request.path_params["global_id"]
        with data.lock:
            if key not in data.issues:
                return JSONResponse({"error": "no such issue"}, status_code=404)
            if request.method == "DELETE":
                data.links.pop((key, global_id), None)
                return Response(status_code=204)
            body = await request.json()
            data.link_puts += 1
            existing = data.links.get((key, global_id))
            link_id = existing["id"] if existing else f"link-{len(data.links) + 1}"
            data.links[(key, global_id)] = {"id": link_id, "title": body["title"]}
        return JSONResponse({"id": link_id}, status_code=200 if existing else 201)

    return Starlette(
        routes=[
            Route("/issues", issues),
            Route("/issue-keys", issue_keys),
            Route("/issues/{key}/links/{global_id}", link, methods=["PUT", "DELETE"]),
        ]
    )


class TrackerConnection(ConnectionConfig):
    url: str
    # items a page with fields and ids only, when the tracker tells (it answers in one page)
    pages: tuple[int, int] | None = None


class TrackerQuery(WorkQuery):
    parent: str = Field(description="The parent whose children are the work.")


def fill(text: str, cycle: CycleWindow) -> str:
    """The cycle placeholders, as a connector fills them in its own query language."""
    return text.replace("{cycle_start}", cycle.start.isoformat()).replace(
        "{cycle_end}", cycle.end.isoformat()
    )


class SmallTracker(
    HttpConnection[TrackerConnection], ConnectorBase[TrackerConnection], WorkTracker
):
    work_model = TrackerQuery
    max_retries = 0

    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        assert isinstance(query, TrackerQuery)
        params = {"q": fill(query.parent, cycle)}
        if since is not None:
            params["updated_since"] = since.isoformat()
        body = await self.client.get_json("/issues", params=params)
        return [
            WorkItem(
                key=i["key"],
                title=i["title"],
                state=WorkState(i["state"]),
                url=i["url"],
                updated_at=datetime.fromisoformat(i["updated"]),
                done_at=datetime.fromisoformat(i["done_at"]) if i["done_at"] else None,
            )
            for i in body["issues"]
        ]

    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        assert isinstance(query, TrackerQuery)
        body = await self.client.get_json("/issue-keys", params={"q": fill(query.parent, cycle)})
        return list(body["keys"])

    def work_pages(self) -> WorkPages | None:
        return None if self.config.pages is None else WorkPages(*self.config.pages)

    async def put_backlink(self, item: str, link: Backlink, ref: str | None) -> str | None:
        body = await self.client.request_json(
            "PUT", f"/issues/{item}/links/{link.global_id}", json={"title": link.title}
        )
        return str(body["id"])

    async def remove_backlink(self, item: str, link: Backlink, ref: str | None) -> None:
        await self.client.request("DELETE", f"/issues/{item}/links/{link.global_id}")


TRACKER = Connector(
    type="test_tracker",
    summary="A work tracker (test double).",
    connection_model=TrackerConnection,
    implementation=SmallTracker,
)
