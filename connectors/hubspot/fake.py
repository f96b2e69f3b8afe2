"""A sandbox HubSpot portal: CRM v3 search, deal pipelines, real error bodies and rate limits.

Routes (all want ``Authorization: Bearer <token>``; otherwise HubSpot's 401 body):

* ``POST /crm/v3/objects/{objectType}/search`` for deals, contacts and companies (or their ids
  ``0-3``, ``0-1``, ``0-2``): ``filterGroups`` (groups ORed, filters ANDed; every operator of the
  spec), ``properties``, ``sorts`` (``{"propertyName", "direction"}``, or a string: a property
  name, ``-`` for descending), ``limit`` (1 to 200), ``after`` (an offset, as HubSpot's is) and the
  answer's ``total`` and ``paging.next.after``. Paging past ``search_ceiling`` (10,000 unless
  told otherwise) is a 400, as on the real API. Unknown properties in filters or sorts are 400
  ``VALIDATION_ERROR`` naming them. Property values are strings; datetimes are ISO-8601 in
  answers and accept epoch milliseconds (or ISO) in filters.
* ``GET /crm/v3/pipelines/{objectType}``: two deal pipelines (``default`` "Sales Pipeline" and
  ``renewals`` "Renewals", both with a "Closed Won" stage), ``metadata`` with ``isClosed`` and
  ``probability`` as strings.
* ``GET /crm/v3/objects/{objectType}``: the list, a page of records in id order, ``limit``
  (default 10, at most 100), ``after`` cursor answered as ``paging.next.after``, ``properties``
  (comma-separated or repeated; unknown names ignored, as documented), ``archived``.
* ``POST /crm/v3/objects/deals``: create a deal, so numbers move while a demo runs.

Rate limits as HubSpot applies them: search is limited per second (``search_per_second``, 5) and
its answers carry no rate-limit headers; its 429 is the real body with ``policyName: SECONDLY``.
Other routes carry ``X-HubSpot-RateLimit-*`` (daily, 10-second burst, secondly) and answer 429
``TEN_SECONDLY_ROLLING`` or ``DAILY`` when those are spent; the limits are the account's, and
``app.state.api.rate_limited`` counts the calls each policy refused, whoever sent them.
``app.state.portal`` holds the data, so tests compute exact expected numbers from it.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_TOKEN = "pat-na1-00000000-sandbox"  # noqa: S105 - the fake's own token
DEAL_COUNT = 300
CONTACT_COUNT = 150
COMPANY_COUNT = 40
OWNERS = ("101", "102", "103", "104", "105")
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}

# name -> type, per object; "number", "datetime" or "string" (enumerations compare as strings)
SCHEMAS: dict[str, dict[str, str]] = {
    "deals": {
        "hs_object_id": "number",
        "dealname": "string",
        "amount": "number",
        "dealstage": "string",
        "pipeline": "string",
        "closedate": "datetime",
        "createdate": "datetime",
        "hs_lastmodifieddate": "datetime",
        "hubspot_owner_id": "string",
    },
    "contacts": {
        "hs_object_id": "number",
        "email": "string",
        "firstname": "string",
        "lastname": "string",
        "lifecyclestage": "string",
        "createdate": "datetime",
        "lastmodifieddate": "datetime",
        "hubspot_owner_id": "string",
    },
    "companies": {
        "hs_object_id": "number",
        "name": "string",
        "domain": "string",
        "industry": "string",
        "annualrevenue": "number",
        "createdate": "datetime",
        "hs_lastmodifieddate": "datetime",
        "hubspot_owner_id": "string",
    },
}
DEFAULT_PROPERTIES = {
    "deals": ["dealname", "amount", "closedate", "pipeline", "dealstage", "createdate"],
    "contacts": ["firstname", "lastname", "email", "createdate"],
    "companies": ["name", "domain", "createdate"],
}
ALWAYS = ("hs_object_id", "createdate", "hs_lastmodifieddate")
LIST_DEFAULT_LIMIT = 10
LIST_MAX_LIMIT = 100  # the list endpoints' page size ceiling (the search endpoint's is 200)
ALIASES = {"0-3": "deals", "0-1": "contacts", "0-2": "companies"}


def _stage(id_: str, label: str, order: int, closed: bool, probability: str) -> dict[str, Any]:
    return {
        "id": id_,
        "label": label,
        "displayOrder": order,
        "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
    }


PIPELINES: list[dict[str, Any]] = [
    {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "stages": [
            _stage("appointmentscheduled", "Appointment Scheduled", 0, False, "0.2"),
            _stage("qualifiedtobuy", "Qualified To Buy", 1, False, "0.4"),
            _stage("presentationscheduled", "Presentation Scheduled", 2, False, "0.6"),
            _stage("decisionmakerboughtin", "Decision Maker Bought-In", 3, False, "0.8"),
            _stage("contractsent", "Contract Sent", 4, False, "0.9"),
            _stage("closedwon", "Closed Won", 5, True, "1.0"),
            _stage("closedlost", "Closed Lost", 6, True, "0.0"),
        ],
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
    },
    {
        "id": "renewals",
        "label": "Renewals",
        "displayOrder": 1,
        "stages": [
            _stage("101202303", "Renewal Due", 0, False, "0.5"),
            _stage("101202304", "Closed Won", 1, True, "1.0"),
            _stage("101202305", "Closed Lost", 2, True, "0.0"),
        ],
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
    },
]


def iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@dataclass
class CrmRecord:
    id: str
    properties: dict[str, str | None]
    created: datetime
    updated: datetime

    def to_json(self, names: list[str]) -> dict[str, Any]:
        props = {n: self.properties.get(n) for n in names if n in self.properties}
        return {
            "id": self.id,
            "properties": props,
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated),
            "archived": False,
        }


class Portal:
    """The fake account's records; the server thread and the test share it, hence the lock."""

    def __init__(self, *, seed: int = 2026, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        self._lock = threading.Lock()
        self._next_id = 1000
        self.records: dict[str, list[CrmRecord]] = {"deals": [], "contacts": [], "companies": []}
        rng = random.Random(seed)  # noqa: S311 - sample data
        base = datetime.combine(self.anchor, datetime.min.time(), tzinfo=UTC)
        for _ in range(DEAL_COUNT):
            pipeline = PIPELINES[0] if rng.random() < 0.8 else PIPELINES[1]
            stage = rng.choice(pipeline["stages"])
            created = base - timedelta(days=rng.randrange(400), seconds=rng.randrange(86_400))
            close = created + timedelta(days=rng.randrange(1, 120))
            amount = (
                None if rng.random() < 0.06 else f"{rng.randrange(50_000, 5_000_001) / 100:.2f}"
            )
            self._add(
                "deals",
                {
                    "dealname": f"Deal {self._next_id}",
                    "amount": amount,
                    "dealstage": stage["id"],
                    "pipeline": pipeline["id"],
                    "closedate": iso(close),
                    "hubspot_owner_id": rng.choice(OWNERS),
                },
                created,
            )
        for n in range(CONTACT_COUNT):
            created = base - timedelta(days=rng.randrange(400), seconds=rng.randrange(86_400))
            self._add(
                "contacts",
                {
                    "email": f"person{n}@example.com",
                    "firstname": f"Person{n}",
                    "lastname": "Sandbox",
                    "lifecyclestage": rng.choice(("lead", "marketingqualifiedlead", "customer")),
                    "lastmodifieddate": iso(created),
                    "hubspot_owner_id": rng.choice(OWNERS),
                },
                created,
            )
        for n in range(COMPANY_COUNT):
            created = base - timedelta(days=rng.randrange(400), seconds=rng.randrange(86_400))
            self._add(
                "companies",
                {
                    "name": f"Company {n}",
                    "domain": f"company{n}.example",
                    "industry": rng.choice(("COMPUTER_SOFTWARE", "RETAIL", "BANKING")),
                    "annualrevenue": str(rng.randrange(100_000, 50_000_000)),
                    "hubspot_owner_id": rng.choice(OWNERS),
                },
                created,
            )

    def _add(self, kind: str, props: dict[str, str | None], created: datetime) -> CrmRecord:
        record_id = str(self._next_id)
        self._next_id += 1
        full: dict[str, str | None] = {
            **props,
            "hs_object_id": record_id,
            "createdate": iso(created),
            "hs_lastmodifieddate": iso(created),
        }
        record = CrmRecord(record_id, full, created, created)
        self.records[kind].append(record)
        return record

    def add(
        self, kind: str, props: dict[str, str | None], created: datetime | None = None
    ) -> CrmRecord:
        with self._lock:
            return self._add(kind, props, created or datetime.now(UTC))

    def all(self, kind: str) -> list[CrmRecord]:
        with self._lock:
            return list(self.records[kind])

    def where(self, kind: str, predicate: Callable[[CrmRecord], bool]) -> list[CrmRecord]:
        return [r for r in self.all(kind) if predicate(r)]


class _Invalid(Exception):
    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status, headers, media_type="application/json;charset=utf-8")


def _comparable(kind: str, value: str) -> Any:
    """A filter value or a stored value in the order HubSpot compares them."""
    if kind == "number":
        return Decimal(value)
    if kind == "datetime":
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        return to_ms(parse_time(text))
    return value.casefold()


@dataclass
class _Filter:
    name: str
    kind: str
    operator: str
    value: Any = None
    high: Any = None
    values: list[Any] = field(default_factory=list)

    def matches(self, record: CrmRecord) -> bool:
        raw = record.properties.get(self.name)
        if self.operator == "HAS_PROPERTY":
            return raw not in (None, "")
        if self.operator == "NOT_HAS_PROPERTY":
            return raw in (None, "")
        if raw in (None, ""):
            return self.operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
        assert raw is not None
        have = _comparable(self.kind, raw)
        match self.operator:
            case "EQ":
                return bool(have == self.value)
            case "NEQ":
                return bool(have != self.value)
            case "LT":
                return bool(have < self.value)
            case "LTE":
                return bool(have <= self.value)
            case "GT":
                return bool(have > self.value)
            case "GTE":
                return bool(have >= self.value)
            case "BETWEEN":
                return bool(self.value <= have <= self.high)
            case "IN":
                return have in self.values
            case "NOT_IN":
                return have not in self.values
            case "CONTAINS_TOKEN":
                return str(self.value).strip("*") in raw.casefold()
            case _:  # NOT_CONTAINS_TOKEN
                return str(self.value).strip("*") not in raw.casefold()


def _sort_key(kind: str, name: str) -> Callable[[CrmRecord], Any]:
    def key(record: CrmRecord) -> Any:
        return _comparable(kind, record.properties.get(name) or "")

    return key


class HubSpotApi:
    def __init__(
        self,
        portal: Portal,
        token: str,
        *,
        search_ceiling: int,
        search_per_second: int,
        burst_max: int,
        daily_limit: int,
    ) -> None:
        self.portal = portal
        self.token = token
        self.search_ceiling = search_ceiling
        self.search_per_second = search_per_second
        self.burst_max = burst_max
        self.daily_limit = daily_limit
        self.daily_used = 0
        # Calls refused for a spent limit, per policyName: counted for the account (the private
        # app's token), whichever client or process sent them, as HubSpot does.
        self.rate_limited: Counter[str] = Counter()
        self._search_times: deque[float] = deque()
        self._burst_times: deque[float] = deque()
        self._lock = threading.Lock()

    # --- auth and limits ------------------------------------------------------------------

    def _unauthorized(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and header[7:].strip() == self.token:
            return None
        return _json(
            _error_body(
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            ),
            401,
        )

    def _search_limited(self) -> Response | None:
        now = time.monotonic()
        with self._lock:
            while self._search_times and now - self._search_times[0] >= 1.0:
                self._search_times.popleft()
            if len(self._search_times) >= self.search_per_second:
                self.rate_limited["SECONDLY"] += 1
                body = {
                    "status": "error",
                    "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": str(uuid.uuid4()),
                    "policyName": "SECONDLY",
                    "requestId": uuid.uuid4().hex,
                }
                return _json(body, 429)
            self._search_times.append(now)
            self.daily_used += 1
        return None

    def _limited_call(self) -> tuple[Response | None, dict[str, str]]:
        """Counts a non-search call; a 429 when a window is spent; the headers to send."""
        now = time.monotonic()
        with self._lock:
            while self._burst_times and now - self._burst_times[0] >= 10.0:
                self._burst_times.popleft()
            policy = None
            if self.daily_used >= self.daily_limit:
                policy, message = "DAILY", "You have reached your daily limit."
            elif len(self._burst_times) >= self.burst_max:
                policy, message = (
                    "TEN_SECONDLY_ROLLING",
                    "You have reached your ten_secondly_rolling limit.",
                )
            else:
                self._burst_times.append(now)
                self.daily_used += 1
            headers = {
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(
                    max(0, self.daily_limit - self.daily_used)
                ),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(self.burst_max),
                "X-HubSpot-RateLimit-Remaining": str(
                    max(0, self.burst_max - len(self._burst_times))
                ),
                "X-HubSpot-RateLimit-Secondly": str(max(1, self.burst_max // 10)),
                "X-HubSpot-RateLimit-Secondly-Remaining": str(
                    max(
                        0, self.burst_max // 10 - sum(1 for t in self._burst_times if now - t < 1.0)
                    )
                ),
            }
        if policy is None:
            return None, headers
        with self._lock:
            self.rate_limited[policy] += 1
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": uuid.uuid4().hex,
        }
        return _json(body, 429, headers), headers

    # --- search -----------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        if limited := self._search_limited():
            return limited
        requested = request.path_params["objectType"]
        kind = ALIASES.get(requested, requested)
        if kind not in SCHEMAS:
            return _json(
                _error_body(f"Unable to infer object type from: {requested}", "OBJECT_NOT_FOUND"),
                400,
            )
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _json(
                _error_body("Invalid input JSON: the body is not JSON", "VALIDATION_ERROR"), 400
            )
        try:
            return _json(self._answer(kind, requested, body))
        except _Invalid as exc:
            extra = {"errors": exc.errors} if exc.errors else {}
            return _json(_error_body(exc.message, "VALIDATION_ERROR", **extra), 400)

    def _answer(self, kind: str, requested: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Invalid("Invalid input JSON: expected an object")
        schema = SCHEMAS[kind]
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 200:
            raise _Invalid(
                "There was a problem with the request.",
                errors=[
                    {
                        "message": "limit must be between 1 and 200",
                        "in": "limit",
                        "code": "INVALID_LIMIT",
                    }
                ],
            )
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            raise _Invalid(
                f"after must be a paging cursor returned by a previous page, got {after_text!r}"
            )
        offset = int(after_text)
        if offset >= self.search_ceiling:
            raise _Invalid(
                f"The search API can return at most {self.search_ceiling} results; "
                f"after={offset} is past that limit."
            )
        groups = self._groups(body.get("filterGroups") or [], schema)
        matches = [
            r
            for r in self.portal.all(kind)
            if not groups or any(all(f.matches(r) for f in g) for g in groups)
        ]
        for name, descending in reversed(self._sorts(body.get("sorts") or [], schema)):
            present = [r for r in matches if r.properties.get(name) not in (None, "")]
            absent = [r for r in matches if r.properties.get(name) in (None, "")]
            present.sort(key=_sort_key(schema[name], name), reverse=descending)
            matches = present + absent
        names = body.get("properties") or DEFAULT_PROPERTIES[kind]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Invalid("properties must be a list of property names")
        shown = list(dict.fromkeys([*names, *ALWAYS]))
        page = matches[offset : offset + limit]
        answer: dict[str, Any] = {
            "total": len(matches),
            "results": [r.to_json(shown) for r in page],
        }
        if offset + limit < len(matches):
            following = str(offset + limit)
            answer["paging"] = {
                "next": {
                    "after": following,
                    "link": f"https://api.hubapi.com/crm/v3/objects/{requested}/search?after={following}",
                }
            }
        return answer

    def _groups(self, raw: Any, schema: dict[str, str]) -> list[list[_Filter]]:
        if not isinstance(raw, list):
            raise _Invalid("filterGroups must be a list")
        if len(raw) > 5:
            raise _Invalid("Too many filter groups: at most 5 are allowed")
        groups: list[list[_Filter]] = []
        total = 0
        for g, group in enumerate(raw):
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list):
                raise _Invalid(f"filterGroups[{g}] has no filters list")
            if len(filters) > 10:
                raise _Invalid("Too many filters in a group: at most 10 are allowed")
            total += len(filters)
            groups.append(
                [
                    self._filter(f, schema, f"filterGroups[{g}].filters[{i}]")
                    for i, f in enumerate(filters)
                ]
            )
        if total > 25:
            raise _Invalid("Too many filters: at most 25 are allowed across all groups")
        return groups

    def _filter(self, raw: Any, schema: dict[str, str], where: str) -> _Filter:
        if not isinstance(raw, dict) or "propertyName" not in raw or "operator" not in raw:
            raise _Invalid(
                "Invalid input JSON: Cannot build Filter, some of required attributes are not set "
                "[propertyName, operator]"
            )
        name, operator = str(raw["propertyName"]), str(raw["operator"])
        if name not in schema:
            raise _Invalid(
                "There was a problem with the request.",
                errors=[
                    {
                        "message": f'Property "{name}" does not exist',
                        "code": "PROPERTY_DOESNT_EXIST",
                        "in": f"{where}.propertyName",
                        "context": {"propertyName": [name]},
                    }
                ],
            )
        if operator not in OPERATORS:
            raise _Invalid(f"Unknown operator {operator!r} in {where}")
        kind = schema[name]
        flt = _Filter(name, kind, operator)
        try:
            if operator in ("IN", "NOT_IN"):
                values = raw.get("values")
                if not isinstance(values, list) or not values:
                    raise _Invalid(f"{operator} needs `values` in {where}")
                flt.values = [_comparable(kind, str(v)) for v in values]
            elif operator not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                if raw.get("value") is None:
                    raise _Invalid(f"{operator} needs `value` in {where}")
                flt.value = _comparable(kind, str(raw["value"]))
                if operator == "BETWEEN":
                    if raw.get("highValue") is None:
                        raise _Invalid(f"BETWEEN needs `highValue` in {where}")
                    flt.high = _comparable(kind, str(raw["highValue"]))
        except (InvalidOperation, ValueError) as exc:
            if isinstance(exc, _Invalid):
                raise
            raise _Invalid(f"{where}: value is not a valid {kind} for {name}") from None
        return flt

    def _sorts(self, raw: Any, schema: dict[str, str]) -> list[tuple[str, bool]]:
        if not isinstance(raw, list):
            raise _Invalid("sorts must be a list")
        out: list[tuple[str, bool]] = []
        for item in raw:
            spec = item
            if isinstance(item, str) and item.strip().startswith("{"):
                spec = json.loads(item)
            if isinstance(spec, dict):
                name = str(spec.get("propertyName", ""))
                descending = str(spec.get("direction", "ASCENDING")).upper() == "DESCENDING"
            elif isinstance(spec, str):
                descending = spec.startswith("-")
                name = spec.lstrip("-")
            else:
                raise _Invalid("a sort must be {propertyName, direction} or a property name")
            if name not in schema:
                raise _Invalid(
                    "There was a problem with the request.",
                    errors=[
                        {
                            "message": f'Property "{name}" does not exist',
                            "code": "PROPERTY_DOESNT_EXIST",
                            "in": "sorts",
                        }
                    ],
                )
            out.append((name, descending))
        return out

    # --- list -------------------------------------------------------------------------------

    async def list_objects(self, request: Request) -> Response:
        """``GET /crm/v3/objects/{objectType}``: a page of records in id order, ``limit`` (default
        10, at most 100), ``after`` from the previous page's ``paging.next.after``, ``properties``
        as a comma-separated list or repeated (unknown names ignored), ``archived``."""
        if denied := self._unauthorized(request):
            return denied
        limited, headers = self._limited_call()
        if limited is not None:
            return limited
        requested = request.path_params["objectType"]
        kind = ALIASES.get(requested, requested)
        if kind not in SCHEMAS:
            return _json(
                _error_body(f"Unable to infer object type from: {requested}", "OBJECT_NOT_FOUND"),
                400,
                headers,
            )
        query = request.query_params
        limit_text = query.get("limit", str(LIST_DEFAULT_LIMIT))
        after_text = query.get("after") or "0"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_MAX_LIMIT:
            return _json(
                _error_body(
                    f"limit must be between 1 and {LIST_MAX_LIMIT}, got {limit_text!r}",
                    "VALIDATION_ERROR",
                ),
                400,
                headers,
            )
        if not after_text.isdigit():
            return _json(
                _error_body(
                    f"after must be a paging cursor returned by a previous page, got "
                    f"{after_text!r}",
                    "VALIDATION_ERROR",
                ),
                400,
                headers,
            )
        limit, offset = int(limit_text), int(after_text)
        asked = [n.strip() for v in query.getlist("properties") for n in v.split(",") if n.strip()]
        names = asked or DEFAULT_PROPERTIES[kind]
        shown = list(dict.fromkeys([*names, *ALWAYS]))
        archived = query.get("archived", "false").lower() == "true"
        records = [] if archived else sorted(self.portal.all(kind), key=lambda r: int(r.id))
        answer: dict[str, Any] = {"results": [r.to_json(shown) for r in records[offset:][:limit]]}
        if offset + limit < len(records):
            following = str(offset + limit)
            answer["paging"] = {
                "next": {
                    "after": following,
                    "link": f"https://api.hubapi.com/crm/v3/objects/{requested}?after={following}",
                }
            }
        return _json(answer, headers=headers)

    # --- other routes -----------------------------------------------------------------------

    async def pipelines(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        limited, headers = self._limited_call()
        if limited is not None:
            return limited
        kind = ALIASES.get(request.path_params["objectType"], request.path_params["objectType"])
        results = PIPELINES if kind == "deals" else []
        return _json({"results": results}, headers=headers)

    async def create_deal(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        limited, headers = self._limited_call()
        if limited is not None:
            return limited
        try:
            body = json.loads(await request.body())
            props = body["properties"]
            if not isinstance(props, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _json(
                _error_body('Invalid input JSON: expected {"properties": {…}}', "VALIDATION_ERROR"),
                400,
            )
        unknown = [n for n in props if n not in SCHEMAS["deals"]]
        if unknown:
            return _json(
                _error_body(f"Property values were not valid: {unknown}", "VALIDATION_ERROR"), 400
            )
        record = self.portal.add(
            "deals", {k: None if v is None else str(v) for k, v in props.items()}
        )
        return _json(record.to_json(list(record.properties)), 201, headers)


def hubspot_app(
    *,
    token: str = DEFAULT_TOKEN,
    seed: int = 2026,
    anchor: date | None = None,
    search_ceiling: int = 10_000,
    search_per_second: int = 5,
    burst_max: int = 190,
    daily_limit: int = 1_000_000,
) -> Starlette:
    """The fake portal as an ASGI app; ``app.state.portal`` is its :class:`Portal`."""
    portal = Portal(seed=seed, anchor=anchor)
    api = HubSpotApi(
        portal,
        token,
        search_ceiling=search_ceiling,
        search_per_second=search_per_second,
        burst_max=burst_max,
        daily_limit=daily_limit,
    )
    app = Starlette(
        routes=[
            Route("/crm/v3/objects/{objectType}/search", api.search, methods=["POST"]),
            Route("/crm/v3/pipelines/{objectType}", api.pipelines, methods=["GET"]),
            Route("/crm/v3/objects/deals", api.create_deal, methods=["POST"]),
            Route("/crm/v3/objects/{objectType}", api.list_objects, methods=["GET"]),
        ]
    )
    app.state.portal = portal
    app.state.api = api
    return app
