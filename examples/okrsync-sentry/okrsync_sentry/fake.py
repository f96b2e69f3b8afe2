"""A sandbox Sentry: the organization issues listing, as https://docs.sentry.io/api/ describes it.

``GET /api/0/organizations/{org}/issues/`` with ``Authorization: Bearer <token>``, the search
``query`` (the ``is:`` and ``level:`` filters of Sentry's search syntax), ``project``, ``start``/
``end`` (issues seen in that range), ``limit`` (at most 100) and ``cursor``. Pages are linked in
the ``Link`` header exactly as Sentry links them: a ``previous`` and a ``next`` link, each with
``results="true|false"`` and its ``cursor="<value>:<offset>:<is_prev>"``. Every answer carries the
``X-Sentry-Rate-Limit-*`` headers; past the fixed one-second window's allowance the answer is 429
with Sentry's ``detail`` body. Errors are ``{"detail": "..."}`` like the real API.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "sntrys_sandbox_token"  # noqa: S105 - the sandbox's made-up token
ORGANIZATION = "acme"
PROJECTS = {1: "shop", 2: "checkout"}
MAX_LIMIT = 100
STATUSES = ("unresolved", "resolved", "ignored")
LEVELS = ("error", "warning", "fatal", "info")


@dataclass
class Issues:
    """The seeded issues, and switches a test flips to make the fake misbehave."""

    items: list[dict[str, Any]] = field(default_factory=list)
    requests_per_second: int = 40
    repeat_cursor: bool = False  # a broken deployment: every next link points at page two
    _window: int = 0
    _used: int = 0

    def seed(self, count: int, *, anchor: datetime, seed: int = 3) -> None:
        rng = random.Random(seed)  # noqa: S311 - sample data
        for n in range(count):
            first = anchor - timedelta(days=rng.randrange(1, 200))
            last = min(anchor, first + timedelta(days=rng.randrange(0, 60)))
            project = rng.choice(list(PROJECTS))
            self.items.append(
                {
                    "id": str(4000 + n),
                    "shortId": f"{PROJECTS[project].upper()}-{n + 1}",
                    "title": f"Error {n}",
                    "level": rng.choice(LEVELS),
                    "status": rng.choice(STATUSES),
                    "project": {"id": str(project), "slug": PROJECTS[project]},
                    "count": str(rng.randrange(1, 500)),
                    "userCount": rng.randrange(0, 50),
                    "firstSeen": first.isoformat().replace("+00:00", "Z"),
                    "lastSeen": last.isoformat().replace("+00:00", "Z"),
                }
            )

    def spend(self) -> tuple[bool, int, int]:
        """Count one request in the current one-second window: (allowed, remaining, reset)."""
        now = int(time.time())
        if now != self._window:
            self._window, self._used = now, 0
        self._used += 1
        return (
            self._used <= self.requests_per_second,
            max(0, self.requests_per_second - self._used),
            now + 1,
        )


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _matches(issue: dict[str, Any], search: str) -> bool:
    for term in search.split():
        name, _, value = term.partition(":")
        if name == "is" and value in STATUSES:
            if issue["status"] != value:
                return False
        elif name == "level" and value in LEVELS:
            if issue["level"] != value:
                return False
        else:
            raise ValueError(f"Error parsing search query: unsupported term {term!r}")
    return True


def _seen_between(issue: dict[str, Any], start: str | None, end: str | None) -> bool:
    def parse(text: str) -> datetime:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return found if found.tzinfo else found.replace(tzinfo=UTC)

    first, last = parse(issue["firstSeen"]), parse(issue["lastSeen"])
    return (end is None or first <= parse(end)) and (start is None or last >= parse(start))


def _link(request: Request, cursor: str, rel: str, results: bool) -> str:
    url = request.url.include_query_params(cursor=cursor)
    return f'<{url}>; rel="{rel}"; results="{str(results).lower()}"; cursor="{cursor}"'


def sentry_app(*, token: str = TOKEN, issues: Issues | None = None) -> Starlette:
    data = issues or Issues()
    if issues is None:
        data.seed(240, anchor=datetime.now(UTC))

    async def list_issues(request: Request) -> JSONResponse:
        allowed, remaining, reset = data.spend()
        limits = {
            "X-Sentry-Rate-Limit-Limit": str(data.requests_per_second),
            "X-Sentry-Rate-Limit-Remaining": str(remaining),
            "X-Sentry-Rate-Limit-Reset": str(reset),
            "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
            "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
        }
        if request.headers.get("authorization") != f"Bearer {token}":
            return _detail(401, "Invalid token", limits)
        if request.path_params["org"] != ORGANIZATION:
            return _detail(404, "The requested resource does not exist", limits)
        if not allowed:
            return _detail(
                429,
                "You are attempting to use this endpoint too frequently. Limit is "
                f"{data.requests_per_second} requests in 1 seconds",
                limits,
            )
        params = request.query_params
        try:
            limit = min(MAX_LIMIT, int(params.get("limit", MAX_LIMIT)))
            offset = int(params.get("cursor", "0:0:0").split(":")[1])
            project = params.get("project")
            found = [
                issue
                for issue in data.items
                if _matches(issue, params.get("query", "is:unresolved"))
                and (project is None or issue["project"]["id"] == project)
                and _seen_between(issue, params.get("start"), params.get("end"))
            ]
        except (ValueError, IndexError) as exc:
            return _detail(400, str(exc), limits)
        page = found[offset : offset + limit]
        following = MAX_LIMIT if data.repeat_cursor else offset + limit
        links = ", ".join(
            (
                _link(request, f"0:{max(0, offset - limit)}:1", "previous", offset > 0),
                _link(request, f"0:{following}:0", "next", offset + limit < len(found)),
            )
        )
        return JSONResponse(page, headers={**limits, "Link": links, "X-Hits": str(len(found))})

    app = Starlette(routes=[Route("/api/0/organizations/{org}/issues/", list_issues)])
    app.state.issues = data
    return app
