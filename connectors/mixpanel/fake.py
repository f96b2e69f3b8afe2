"""A sandbox Mixpanel Query API: ``GET /api/query/segmentation`` over seeded events.

Wire format as in Mixpanel's published OpenAPI description (``query.openapi.yaml``):
``project_id`` (required with a service account), ``event``, ``from_date``/``to_date``
(``yyyy-mm-dd``, inclusive), ``unit`` (minute|hour|day|month; default day), ``interval`` (days per
bucket, in lieu of ``unit`` when ``type`` is not general), ``type`` (general|unique|average),
``where``; answer ``{"data": {"series": [...], "values": {"<event>": {"<date>": n}}},
"legend_size": 1}``. Errors are ``{"request": "<path?query>", "error": "<message>"}``. Auth is
HTTP Basic with a service account. The allowance is enforced like the real one: 60 queries per
rolling hour and 5 at once per project, answered with 429 (Mixpanel documents no
``Retry-After``; neither does the fake).

``where`` is accepted only in the form ``properties["plan"] == "<value>"``: each occurrence has
a ``plan`` property, so a filtered number can be checked too; other expressions get a 400.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import threading
import time
from datetime import date, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_USER = "okrsync-sandbox.1a2b3c.mp-service-account"
DEFAULT_SECRET = "sandbox-service-account-secret"  # noqa: S105 - the fake's own secret
DEFAULT_PROJECT = 31337
EVENTS = {"Signed up": 12, "Viewed report": 90, "Upgraded plan": 3}
PLANS = ("free", "pro", "enterprise")
USERS = 250
HISTORY_DAYS = 400
_WHERE = re.compile(r'^\s*properties\["plan"\]\s*==\s*"([^"]*)"\s*$')


class EventData:
    """Seeded occurrences: for each (event, day), a list of (distinct_id, plan)."""

    def __init__(self, *, seed: int = 11, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        rng = random.Random(seed)  # noqa: S311 - sample data
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, date], list[tuple[str, str]]] = {}
        for offset in range(HISTORY_DAYS):
            day = self.anchor - timedelta(days=offset)
            for event, mean in EVENTS.items():
                count = rng.randrange(mean // 2, mean + mean // 2 + 1)
                self._rows[(event, day)] = [
                    (f"user-{rng.randrange(USERS):04d}", rng.choice(PLANS)) for _ in range(count)
                ]

    def occurrences(self, event: str, day: date) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._rows.get((event, day), ()))

    def add(self, event: str, day: date, user: str = "user-new", plan: str = "pro") -> None:
        with self._lock:
            self._rows.setdefault((event, day), []).append((user, plan))


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _date(value: str | None, name: str) -> date:
    if not value:
        raise _Reject(400, f"'{name}' is a required parameter")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Reject(400, f"'{name}' is not a valid date in the form yyyy-mm-dd") from None


class MixpanelApi:
    def __init__(
        self,
        data: EventData,
        username: str,
        secret: str,
        project_id: int,
        queries_per_hour: int | None,
        max_concurrent: int,
    ) -> None:
        self.data = data
        self.expected = "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()
        self.project_id = project_id
        self.queries_per_hour = queries_per_hour
        self.max_concurrent = max_concurrent
        self._lock = threading.Lock()
        self._window: list[float] = []
        self._in_flight = 0
        self.peak_in_flight = 0
        self.delay = 0.0  # seconds each query takes, to observe concurrency

    def _error(self, request: Request, status: int, message: str) -> Response:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = {"request": path, "error": message}
        return Response(json.dumps(body), status, media_type="application/json")

    def _admit(self) -> str | None:
        now = time.monotonic()
        with self._lock:
            if self._in_flight >= self.max_concurrent:
                return "Too many concurrent queries: at most 5 may run at once for a project"
            if self.queries_per_hour is not None:
                self._window = [t for t in self._window if now - t < 3600]
                if len(self._window) >= self.queries_per_hour:
                    return "Query rate limit exceeded: 60 queries per hour for a project"
                self._window.append(now)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        return None

    async def segmentation(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.expected:
            return self._error(request, 401, "Invalid service account credentials")
        refused = self._admit()
        if refused:
            return self._error(request, 429, refused)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._answer(request)
        except _Reject as exc:
            return self._error(request, exc.status, exc.message)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, request: Request) -> Response:
        q = request.query_params
        project = q.get("project_id")
        if project is None:
            raise _Reject(400, "'project_id' is required when using a service account")
        if project != str(self.project_id):
            raise _Reject(403, "Service account does not have access to this project")
        event = q.get("event")
        if not event:
            raise _Reject(400, "'event' is a required parameter")
        start, end = _date(q.get("from_date"), "from_date"), _date(q.get("to_date"), "to_date")
        if end < start:
            raise _Reject(400, "'to_date' must be on or after 'from_date'")
        kind = q.get("type", "general")
        if kind not in ("general", "unique", "average"):
            raise _Reject(400, "'type' must be one of general, unique, average")
        plan: str | None = None
        if q.get("where"):
            match = _WHERE.match(q["where"])
            if match is None:
                raise _Reject(400, f"Unable to parse 'where' expression: {q['where']}")
            plan = match.group(1)
        buckets = self._buckets(start, end, q.get("unit"), q.get("interval"), kind)
        values: dict[str, int | float] = {}
        for key, days in buckets:
            rows = [
                row
                for day in days
                for row in self.data.occurrences(event, day)
                if plan is None or row[1] == plan
            ]
            if kind == "general":
                values[key] = len(rows)
            elif kind == "unique":
                values[key] = len({user for user, _ in rows})
            else:
                values[key] = round(len(rows) / max(1, len(days)), 3)
        body = {
            "data": {"series": [key for key, _ in buckets], "values": {event: values}},
            "legend_size": 1,
        }
        return Response(json.dumps(body), 200, media_type="application/json")

    @staticmethod
    def _buckets(
        start: date, end: date, unit: str | None, interval: str | None, kind: str
    ) -> list[tuple[str, list[date]]]:
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        if interval is not None:
            if kind == "general":
                raise _Reject(400, "'interval' may only be used when 'type' is not general")
            try:
                size = int(interval)
            except ValueError:
                raise _Reject(400, "'interval' must be an integer") from None
            if size < 1:
                raise _Reject(400, "'interval' must be positive")
            return [(days[i].isoformat(), days[i : i + size]) for i in range(0, len(days), size)]
        unit = unit or "day"
        if unit == "day":
            return [(d.isoformat(), [d]) for d in days]
        if unit == "month":
            months: dict[str, list[date]] = {}
            for d in days:
                months.setdefault(d.strftime("%Y-%m-01"), []).append(d)
            return list(months.items())
        if unit in ("minute", "hour"):
            raise _Reject(400, f"the sandbox does not bucket by {unit}")
        raise _Reject(400, "'unit' must be one of minute, hour, day, month")


def mixpanel_app(
    *,
    username: str = DEFAULT_USER,
    secret: str = DEFAULT_SECRET,
    project_id: int = DEFAULT_PROJECT,
    seed: int = 11,
    anchor: date | None = None,
    queries_per_hour: int | None = 60,
    max_concurrent: int = 5,
) -> Starlette:
    """The fake; ``app.state.data`` holds the events, ``app.state.api`` the counters."""
    data = EventData(seed=seed, anchor=anchor)
    api = MixpanelApi(data, username, secret, project_id, queries_per_hour, max_concurrent)
    app = Starlette(routes=[Route("/api/query/segmentation", api.segmentation)])
    app.state.data = data
    app.state.api = api
    return app
