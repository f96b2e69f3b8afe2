"""A sandbox Amplitude Dashboard REST API: ``GET /api/2/events/segmentation`` over seeded events.

Parameters as documented: ``e`` (a JSON event, ``{"event_type": "..."}``), ``start``/``end``
(``YYYYMMDD``, inclusive), ``m`` (``uniques`` default, ``totals``), ``i`` (1 daily, 7 weekly,
30 monthly; default 1). The answer is ``{"data": {"series": [[...]], "seriesLabels": [0],
"seriesCollapsed": [[{"setId": "", "value": n}]], "xValues": [...]}}``; ``seriesCollapsed`` is
the whole range's number (distinct users for ``uniques``). Auth is HTTP Basic with the
project's API key and secret key.

Limits as documented: 5 concurrent requests per project, and a cost budget per hour where a
query costs (days) x (conditions) x (query-type cost); over either, 429 with a message naming
the limit. The documentation does not fix the bodies of errors, so the fake answers plain
text (400, 401, 429), which is what a client must be ready to read anyway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import time
from datetime import date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

DEFAULT_API_KEY = "sandbox0amplitude0api0key0000001"
DEFAULT_SECRET_KEY = "sandbox0amplitude0secret0key0001"  # noqa: S105 - the fake's own
EVENTS = {"Play Song": 150, "Sign Up": 10, "Start Trial": 4}
USERS = 280
HISTORY_DAYS = 400
HOURLY_COST = 108_000


class EventData:
    """Seeded occurrences: for each (event_type, day), the user id of each occurrence."""

    def __init__(self, *, seed: int = 5, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        rng = random.Random(seed)  # noqa: S311 - sample data
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, date], list[str]] = {}
        for offset in range(HISTORY_DAYS):
            day = self.anchor - timedelta(days=offset)
            for event, mean in EVENTS.items():
                count = rng.randrange(mean // 2, mean + mean // 2 + 1)
                self._rows[(event, day)] = [f"user{rng.randrange(USERS):05d}" for _ in range(count)]

    def users(self, event: str, day: date) -> list[str]:
        with self._lock:
            if event == "_all":
                return [u for (e, d), us in self._rows.items() if d == day for u in us]
            return list(self._rows.get((event, day), ()))

    def add(self, event: str, day: date, user: str = "user-new") -> None:
        with self._lock:
            self._rows.setdefault((event, day), []).append(user)


class _Reject(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _day(value: str | None, name: str) -> date:
    if value is None:
        raise _Reject(f"Missing required parameter: {name}")
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise _Reject(f"Invalid {name}: {value!r} (expected YYYYMMDD)") from None


def _buckets(start: date, end: date, interval: int) -> list[list[date]]:
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    groups: dict[Any, list[date]] = {}
    for d in days:
        if interval == 1:
            key: Any = d
        elif interval == 7:
            key = d - timedelta(days=(d.weekday() + 1) % 7)  # weeks start on Sunday
        else:
            key = (d.year, d.month)
        groups.setdefault(key, []).append(d)
    return list(groups.values())


class AmplitudeApi:
    def __init__(
        self, data: EventData, api_key: str, secret_key: str, hourly_cost: int | None
    ) -> None:
        self.data = data
        self.expected = "Basic " + base64.b64encode(f"{api_key}:{secret_key}".encode()).decode()
        self.hourly_cost = hourly_cost
        self._lock = threading.Lock()
        self._spent: list[tuple[float, int]] = []
        self._in_flight = 0
        self.peak_in_flight = 0
        self.delay = 0.0

    def _admit(self, cost: int) -> str | None:
        now = time.monotonic()
        with self._lock:
            if self._in_flight >= 5:
                return "Exceeded concurrent limit: at most 5 concurrent requests per project"
            if self.hourly_cost is not None:
                self._spent = [(t, c) for t, c in self._spent if now - t < 3600]
                used = sum(c for _, c in self._spent)
                if used + cost > self.hourly_cost:
                    return (
                        f"Exceeded rate limit with query of cost {cost} "
                        f"({used} of {self.hourly_cost} used this hour)"
                    )
                self._spent.append((now, cost))
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        return None

    async def segmentation(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.expected:
            return PlainTextResponse("Invalid API key or secret key", 401)
        try:
            event, start, end, metric, interval = self._parse(request)
        except _Reject as exc:
            return PlainTextResponse(exc.message, 400)
        refused = self._admit(cost=(end - start).days + 1)
        if refused:
            return PlainTextResponse(refused, 429)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._answer(event, start, end, metric, interval)
        finally:
            with self._lock:
                self._in_flight -= 1

    @staticmethod
    def _parse(request: Request) -> tuple[str, date, date, str, int]:
        q = request.query_params
        raw = q.get("e")
        if raw is None:
            raise _Reject("Missing required parameter: e")
        try:
            event = json.loads(raw)
        except ValueError:
            raise _Reject("Invalid event JSON in parameter e") from None
        if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
            raise _Reject("Parameter e must be an event object with an event_type")
        start, end = _day(q.get("start"), "start"), _day(q.get("end"), "end")
        if end < start:
            raise _Reject("end must not be before start")
        if (end - start).days >= 365:
            raise _Reject("Daily segmentation is capped at 365 days")
        metric = q.get("m", "uniques")
        if metric not in ("uniques", "totals"):
            raise _Reject(f"Unsupported metric m={metric!r} in the sandbox (uniques, totals)")
        try:
            interval = int(q.get("i", "1"))
        except ValueError:
            raise _Reject("Invalid interval i") from None
        if interval not in (1, 7, 30):
            raise _Reject(f"Unsupported interval i={interval} in the sandbox (1, 7, 30)")
        return event["event_type"], start, end, metric, interval

    def _answer(self, event: str, start: date, end: date, metric: str, interval: int) -> Response:
        buckets = _buckets(start, end, interval)
        series: list[int] = []
        everyone: list[str] = []
        for days in buckets:
            users = [u for d in days for u in self.data.users(event, d)]
            everyone.extend(users)
            series.append(len(users) if metric == "totals" else len(set(users)))
        total = len(everyone) if metric == "totals" else len(set(everyone))
        body = {
            "data": {
                "series": [series],
                "seriesLabels": [0],
                "seriesCollapsed": [[{"setId": "", "value": total}]],
                "xValues": [days[0].isoformat() for days in buckets],
            }
        }
        return Response(json.dumps(body), 200, media_type="application/json")


def amplitude_app(
    *,
    api_key: str = DEFAULT_API_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    seed: int = 5,
    anchor: date | None = None,
    hourly_cost: int | None = HOURLY_COST,
) -> Starlette:
    """The fake; ``app.state.data`` holds the events, ``app.state.api`` the counters."""
    data = EventData(seed=seed, anchor=anchor)
    api = AmplitudeApi(data, api_key, secret_key, hourly_cost)
    app = Starlette(routes=[Route("/api/2/events/segmentation", api.segmentation)])
    app.state.data = data
    app.state.api = api
    return app
