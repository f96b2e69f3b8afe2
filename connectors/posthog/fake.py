"""A sandbox PostHog: the query API (``POST /api/projects/{id}/query/``) over seeded events.

It speaks PostHog's wire format: a ``HogQLQuery`` body (``kind``, ``query``, ``values`` for
``{placeholder}`` constants), an answer with ``results``, ``columns``, ``types``, ``hogql``,
``hasMore``, ``limit``, ``offset``, DRF-style errors ``{"type", "code", "detail", "attr"}``,
``Authorization: Bearer <personal API key>``, and a per-hour query allowance answered with
``429 {"type": "throttled_error", "code": "throttled", ...}`` plus ``Retry-After``.

The fake is not ClickHouse. It evaluates the small HogQL subset metrics use::

    SELECT count() | count(DISTINCT person_id) | uniq(distinct_id) FROM events
    [WHERE cond AND cond ...] [LIMIT n]

where a condition is ``event = '<name>'`` or ``timestamp|toDate(timestamp) <op> <date>`` with
``<op>`` one of ``= < <= > >=`` and ``<date>`` a quoted ISO date, ``toDate('…')`` or a
``{placeholder}`` from ``values``. Every event happens at 12:00 UTC on its day, so
``timestamp <= '2026-12-31'`` leaves that day out exactly as ClickHouse would (midnight).
Anything else is answered with a 400 ``validation_error``, never a silent wrong number.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_KEY = "phx_sandbox_personal_key"
DEFAULT_PROJECT = 4242
EVENTS = ("$pageview", "signed_up", "purchase_completed")
DAILY_MEAN = {"$pageview": 120, "signed_up": 9, "purchase_completed": 4}
USERS = 300
HISTORY_DAYS = 400


class EventData:
    """Seeded events: for each (event, day), the person ids of each occurrence."""

    def __init__(self, *, seed: int = 7, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        rng = random.Random(seed)  # noqa: S311 - sample data
        self._lock = threading.Lock()
        self._occurrences: dict[tuple[str, date], list[str]] = {}
        for offset in range(HISTORY_DAYS):
            day = self.anchor - timedelta(days=offset)
            for event in EVENTS:
                mean = DAILY_MEAN[event]
                count = rng.randrange(mean // 2, mean + mean // 2 + 1)
                self._occurrences[(event, day)] = [
                    f"person-{rng.randrange(USERS):04d}" for _ in range(count)
                ]

    def people(self, event: str, day: date) -> list[str]:
        """The person id of every occurrence of ``event`` on ``day`` (repeats included)."""
        with self._lock:
            return list(self._occurrences.get((event, day), ()))

    def add(self, event: str, day: date, person: str = "person-new") -> None:
        with self._lock:
            self._occurrences.setdefault((event, day), []).append(person)

    def all(self) -> list[tuple[str, date, str]]:
        with self._lock:
            return [(e, d, p) for (e, d), ps in self._occurrences.items() for p in ps]


# --- the HogQL subset ---------------------------------------------------------------------------


class HogQLError(Exception):
    def __init__(self, detail: str, code: str = "invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


_SELECT = re.compile(
    r"^\s*select\s+(?P<agg>count\(\s*\)|count\(\s*distinct\s+(?:person_id|distinct_id)\s*\)"
    r"|uniq\(\s*(?:person_id|distinct_id)\s*\))\s+from\s+events"
    r"(?:\s+where\s+(?P<where>.+?))?(?:\s+limit\s+(?P<limit>\d+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_EVENT_COND = re.compile(r"^event\s*=\s*'((?:[^'\\]|\\.)*)'$", re.IGNORECASE)
_TIME_COND = re.compile(
    r"^(?P<lhs>timestamp|todate\(\s*timestamp\s*\))\s*(?P<op><=|>=|=|<|>)\s*(?P<rhs>.+)$",
    re.IGNORECASE,
)
_DATE_LITERAL = re.compile(
    r"^(?:todate(?:time)?\(\s*)?'(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2}))?'\s*\)?$",
    re.IGNORECASE,
)


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


@dataclass
class _Plan:
    distinct: bool
    event: str | None = None
    conds: list[tuple[bool, str, datetime]] = field(default_factory=list)  # (as_date, op, rhs)
    limit: int = 100


def bind(query: str, values: dict[str, Any]) -> str:
    """The query with its ``{placeholders}`` replaced by constants, as HogQL does."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise HogQLError(f"Placeholder {{{name}}} is not available in this context")
        return _quote(values[name])

    return _PLACEHOLDER.sub(one, query)


def plan(query: str) -> _Plan:
    if not query.strip().lower().startswith("select"):
        word = query.strip().split(" ", 1)[0] if query.strip() else "<EOF>"
        raise HogQLError(
            f"Syntax error at line 1, column 0: mismatched input '{word}' expecting "
            "{'select', 'with', '('}",
            code="syntax_error",
        )
    match = _SELECT.match(query)
    if match is None:
        raise HogQLError(
            "The sandbox evaluates only SELECT count()/uniq(...) FROM events WHERE ... "
            "(see connectors/posthog/fake.py)",
            code="unsupported",
        )
    agg = match.group("agg").lower()
    result = _Plan(distinct="distinct" in agg or agg.startswith("uniq"))
    if match.group("limit"):
        result.limit = int(match.group("limit"))
    where = match.group("where")
    if where:
        for part in re.split(r"\s+and\s+", where.strip(), flags=re.IGNORECASE):
            _condition(part.strip(), result)
    return result


def _condition(text: str, into: _Plan) -> None:
    if m := _EVENT_COND.match(text):
        into.event = m.group(1).replace("\\'", "'").replace("\\\\", "\\")
        return
    if m := _TIME_COND.match(text):
        literal = _DATE_LITERAL.match(m.group("rhs").strip())
        if literal is None:
            raise HogQLError(f"Cannot compare timestamp with {m.group('rhs').strip()!r}")
        day = date.fromisoformat(literal.group(1))
        clock = literal.group(2) or "00:00:00"
        when = datetime.fromisoformat(f"{day.isoformat()}T{clock}")
        into.conds.append((m.group("lhs").lower() != "timestamp", m.group("op"), when))
        return
    raise HogQLError(f"Unsupported condition in the sandbox: {text!r}", code="unsupported")


_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def evaluate(data: EventData, parsed: _Plan) -> int:
    people: list[str] = []
    for event, day, person in data.all():
        if parsed.event is not None and event != parsed.event:
            continue
        moment = datetime(day.year, day.month, day.day, 12)
        ok = True
        for as_date, op, rhs in parsed.conds:
            lhs: Any = day if as_date else moment
            right: Any = rhs.date() if as_date else rhs
            if not _OPS[op](lhs, right):
                ok = False
                break
        if ok:
            people.append(person)
    return len(set(people)) if parsed.distinct else len(people)


# --- HTTP ---------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")


def _drf(
    status: int, type_: str, code: str, detail: str, attr: str | None = None, **headers: str
) -> Response:
    return _json({"type": type_, "code": code, "detail": detail, "attr": attr}, status, headers)


class PostHogApi:
    def __init__(
        self, data: EventData, key: str, project_id: int, queries_per_hour: int | None
    ) -> None:
        self.data = data
        self.key = key
        self.project_id = project_id
        self.queries_per_hour = queries_per_hour
        self._lock = threading.Lock()
        self._window: list[float] = []
        self.queries_run = 0

    def _throttled(self) -> Response | None:
        if self.queries_per_hour is None:
            return None
        now = time.monotonic()
        with self._lock:
            self._window = [t for t in self._window if now - t < 3600]
            if len(self._window) >= self.queries_per_hour:
                wait = int(3600 - (now - self._window[0])) + 1
                return _drf(
                    429,
                    "throttled_error",
                    "throttled",
                    f"Request was throttled. Expected available in {wait} seconds.",
                    **{"Retry-After": str(wait)},
                )
            self._window.append(now)
        return None

    async def query(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if not header:
            return _drf(
                401,
                "authentication_error",
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        if not header.startswith("Bearer ") or header[7:].strip() != self.key:
            return _drf(
                401,
                "authentication_error",
                "authentication_failed",
                "Personal API key found in request Authorization header is invalid.",
            )
        if request.path_params["project_id"] != str(self.project_id):
            return _drf(
                403,
                "authentication_error",
                "permission_denied",
                "You don't have access to the project.",
            )
        if throttled := self._throttled():
            return throttled
        try:
            body = await request.json()
        except ValueError:
            return _drf(400, "validation_error", "parse_error", "JSON parse error")
        node = body.get("query") if isinstance(body, dict) else None
        if not isinstance(node, dict):
            return _drf(400, "validation_error", "required", "This field is required.", "query")
        if node.get("kind") != "HogQLQuery":
            return _drf(400, "validation_error", "invalid_input", "Unsupported query kind", "query")
        text = node.get("query")
        if not isinstance(text, str):
            return _drf(400, "validation_error", "invalid_input", "query must be a string", "query")
        values = node.get("values") or {}
        if not isinstance(values, dict):
            return _drf(400, "validation_error", "invalid_input", "values must be an object")
        try:
            bound = bind(text, values)
            parsed = plan(bound)
            count = evaluate(self.data, parsed)
        except HogQLError as exc:
            return _drf(400, "validation_error", exc.code, exc.detail)
        self.queries_run += 1
        column = "count()" if not parsed.distinct else "count(DISTINCT person_id)"
        return _json(
            {
                "cache_key": f"cache_{abs(hash((bound, self.project_id))):x}",
                "is_cached": False,
                "clickhouse": None,
                "columns": [column],
                "error": None,
                "explain": None,
                "hasMore": False,
                "hogql": bound,
                "limit": parsed.limit,
                "metadata": None,
                "modifiers": {},
                "offset": 0,
                "query": text,
                "query_status": None,
                "results": [[count]] if parsed.limit > 0 else [],
                "timings": [],
                "types": [[column, "UInt64"]],
            }
        )


def posthog_app(
    *,
    key: str = DEFAULT_KEY,
    project_id: int = DEFAULT_PROJECT,
    seed: int = 7,
    anchor: date | None = None,
    queries_per_hour: int | None = 120,
) -> Starlette:
    """The fake; ``app.state.data`` holds the events, ``app.state.api`` the counters."""
    data = EventData(seed=seed, anchor=anchor)
    api = PostHogApi(data, key, project_id, queries_per_hour)
    app = Starlette(
        routes=[Route("/api/projects/{project_id}/query/", api.query, methods=["POST"])]
    )
    app.state.data = data
    app.state.api = api
    return app
