"""The sandbox analytics API: a small CRM-like JSON API for the ``http_json`` source to read.

There is no single vendor behind ``http_json``, so this fake plays a typical one, with the three
pagination styles a generic JSON source meets in the wild, each on its own resource:

* ``GET /v1/deals`` and ``POST /v1/deals/search``: opaque cursors (``next_cursor``), ``limit``
  (default 50, at most 100), filters ``status``, ``closed_after`` and ``closed_before``
  (ISO dates, both inclusive, so ``{cycle_start}``..``{cycle_end}`` covers a whole cycle; open
  deals have no ``closed_on`` and are left out by either date filter);
* ``GET /v1/deals/summary`` and ``GET /v1/quarters/{2026-Q4}/summary``: ``{"total", "count"}``;
* ``GET /v1/accounts?page=N&per_page=M``: numbered pages, an empty page past the end;
* ``GET /v1/tickets?page=N``: each page links to the next (``"next"``: absolute URL or null);
* ``POST /v1/deals``: create a deal (so values move while a demo runs).

Every ``/v1`` route wants ``Authorization: Bearer <token>`` (``401 {"error": "invalid_token"}``
otherwise). ``POST /_sandbox/deals`` adds a deal without a token, for the demo driving the fake
from outside; in-process, ``app.state.data.add_deal(...)`` does the same.

The 300 deals are generated from a seed, so tests can compute the exact expected sums from
``app.state.data``; their dates lie in the year before ``anchor`` (default: today), so a
cycle around today always has data. Amounts are whole cents, sent as JSON numbers whose text is
exactly the amount (Python's float repr round-trips every such value in this range).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - the fake's own token, nobody's secret
DEAL_COUNT = 300
ACCOUNT_COUNT = 60
TICKET_COUNT = 45
TICKETS_PER_PAGE = 10
STATUSES = ("won", "lost", "open")
OWNERS = ("amara", "bo", "chen", "dario", "elif", "femi")
PLANS = ("starter", "team", "business", "enterprise")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Deal:
    seq: int
    amount: Decimal
    status: str
    owner: str
    closed_on: date | None

    @property
    def id(self) -> str:
        return f"deal_{self.seq:05d}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "amount": self.amount,
            "status": self.status,
            "owner": self.owner,
            "closed_on": self.closed_on.isoformat() if self.closed_on else None,
        }


@dataclass(frozen=True)
class DealFilter:
    status: str | None = None
    closed_after: date | None = None
    closed_before: date | None = None

    def matches(self, deal: Deal) -> bool:
        if self.status is not None and deal.status != self.status:
            return False
        if self.closed_after is None and self.closed_before is None:
            return True
        if deal.closed_on is None:
            return False
        if self.closed_after is not None and deal.closed_on < self.closed_after:
            return False
        return self.closed_before is None or deal.closed_on <= self.closed_before


class AnalyticsData:
    """The fake's records. The server runs in another thread than the test, hence the lock."""

    def __init__(self, *, seed: int = 2026, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        rng = random.Random(seed)  # noqa: S311 - sample data, not security
        self._lock = threading.Lock()
        self._deals: list[Deal] = []
        for seq in range(1, DEAL_COUNT + 1):
            status = rng.choices(STATUSES, weights=(45, 30, 25))[0]
            closed = None if status == "open" else self.anchor - timedelta(rng.randrange(365))
            cents = rng.randrange(50_000, 500_001)
            self._deals.append(Deal(seq, Decimal(cents) / 100, status, rng.choice(OWNERS), closed))
        self.accounts: list[dict[str, Any]] = [
            {
                "id": f"acc_{n:03d}",
                "name": f"Account {n}",
                "plan": rng.choice(PLANS),
                "arr": Decimal(rng.randrange(1_200, 250_001)),
            }
            for n in range(1, ACCOUNT_COUNT + 1)
        ]
        self.tickets: list[dict[str, Any]] = [
            {
                "id": f"T-{n}",
                "status": rng.choices(("open", "closed"), weights=(40, 60))[0],
                "priority": rng.choice(PRIORITIES),
                "opened_on": (self.anchor - timedelta(rng.randrange(90))).isoformat(),
            }
            for n in range(1, TICKET_COUNT + 1)
        ]

    def deals(self, where: DealFilter | None = None) -> list[Deal]:
        with self._lock:
            return [d for d in self._deals if where is None or where.matches(d)]

    def add_deal(
        self,
        amount: Decimal | int | str,
        status: str = "won",
        owner: str = "sandbox",
        closed_on: date | None = None,
    ) -> Deal:
        """Close (or open) one more deal; a closed deal closes today unless told otherwise."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
        if not value.is_finite() or value < 0:
            raise ValueError("amount must be a non-negative number")
        if status != "open" and closed_on is None:
            closed_on = date.today()
        with self._lock:
            deal = Deal(len(self._deals) + 1, value, status, owner, closed_on)
            self._deals.append(deal)
        return deal


# --- HTTP ------------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    def numbers(value: object) -> object:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    return Response(
        json.dumps(data, default=numbers), status, headers, media_type="application/json"
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": code, "message": message}, status, headers)


def _date(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _BadRequest(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _BadRequest(f"{name} must be an integer") from None
    if not low <= number <= high:
        raise _BadRequest(f"{name} must be between {low} and {high}")
    return number


def _filter(source: Any) -> DealFilter:
    status = source.get("status")
    if status is not None and status not in STATUSES:
        raise _BadRequest(f"status must be one of {', '.join(STATUSES)}")
    return DealFilter(
        status=status,
        closed_after=_date(source.get("closed_after"), "closed_after"),
        closed_before=_date(source.get("closed_before"), "closed_before"),
    )


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(data["after"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _BadRequest("cursor is not one this API issued") from None


class AnalyticsApi:
    """The routes, bound to one :class:`AnalyticsData` and one expected token."""

    def __init__(self, data: AnalyticsData, token: str) -> None:
        self.data = data
        self.token = token

    def _unauthorized(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="sandbox", error="invalid_token"'}
        if not header.lower().startswith("bearer "):
            return _error(401, "invalid_token", "a bearer token is required", challenge)
        if header[7:].strip() != self.token:
            return _error(401, "invalid_token", "the access token is invalid", challenge)
        return None

    def _page_of_deals(self, where: DealFilter, limit: int, cursor: str | None) -> Response:
        after = _decode_cursor(cursor) if cursor else 0
        rest = [d for d in self.data.deals(where) if d.seq > after]
        page = rest[:limit]
        more = len(rest) > limit
        return _json(
            {
                "data": [d.to_json() for d in page],
                "next_cursor": _encode_cursor(page[-1].seq) if more else None,
            }
        )

    async def list_deals(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        query = request.query_params
        try:
            limit = _int(query.get("limit"), "limit", 50, 1, 100)
            return self._page_of_deals(_filter(query), limit, query.get("cursor"))
        except _BadRequest as exc:
            return _error(400, "invalid_parameter", str(exc))

    async def search_deals(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_json", "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "the request body must be a JSON object")
        try:
            limit = _int(body.get("limit"), "limit", 50, 1, 100)
            cursor = body.get("cursor")
            return self._page_of_deals(_filter(body), limit, str(cursor) if cursor else None)
        except _BadRequest as exc:
            return _error(400, "invalid_parameter", str(exc))

    def _summary(self, where: DealFilter) -> dict[str, Any]:
        deals = self.data.deals(where)
        return {"total": sum((d.amount for d in deals), Decimal(0)), "count": len(deals)}

    async def deal_summary(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        try:
            return _json(self._summary(_filter(request.query_params)))
        except _BadRequest as exc:
            return _error(400, "invalid_parameter", str(exc))

    async def quarter_summary(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        quarter = request.path_params["quarter"]
        year, _, q = quarter.partition("-Q")
        if not (year.isdigit() and len(year) == 4 and q in {"1", "2", "3", "4"}):
            return _error(404, "not_found", f"no quarter {quarter!r} (expected e.g. 2026-Q4)")
        first_month = 3 * int(q) - 2
        start = date(int(year), first_month, 1)
        following = date(int(year) + 1, 1, 1) if q == "4" else date(int(year), first_month + 3, 1)
        end = following - timedelta(days=1)
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            return _error(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}")
        summary = self._summary(DealFilter(status, start, end))
        return _json({"quarter": quarter, **summary})

    async def create_deal(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        return await self.sandbox_add_deal(request)

    async def sandbox_add_deal(self, request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            deal = self.data.add_deal(
                body["amount"],
                status=str(body.get("status", "won")),
                owner=str(body.get("owner", "sandbox")),
                closed_on=_date(body.get("closed_on"), "closed_on"),
            )
        except KeyError:
            return _error(422, "invalid_deal", "amount is required")
        except (ValueError, ArithmeticError, _BadRequest) as exc:
            return _error(422, "invalid_deal", str(exc) or "amount must be a number")
        return _json(deal.to_json(), 201)

    async def list_accounts(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        try:
            page = _int(request.query_params.get("page"), "page", 1, 1, 1_000_000)
            per_page = _int(request.query_params.get("per_page"), "per_page", 25, 1, 100)
        except _BadRequest as exc:
            return _error(400, "invalid_parameter", str(exc))
        chunk = self.data.accounts[(page - 1) * per_page : page * per_page]
        return _json(
            {
                "accounts": chunk,
                "page": page,
                "per_page": per_page,
                "total": len(self.data.accounts),
            }
        )

    async def list_tickets(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        try:
            page = _int(request.query_params.get("page"), "page", 1, 1, 1_000_000)
        except _BadRequest as exc:
            return _error(400, "invalid_parameter", str(exc))
        status = request.query_params.get("status")
        tickets = [t for t in self.data.tickets if status is None or t["status"] == status]
        chunk = tickets[(page - 1) * TICKETS_PER_PAGE : page * TICKETS_PER_PAGE]
        more = page * TICKETS_PER_PAGE < len(tickets)
        following = str(request.url.include_query_params(page=page + 1)) if more else None
        return _json({"items": chunk, "next": following})


def analytics_app(
    *, token: str = DEFAULT_TOKEN, seed: int = 2026, anchor: date | None = None
) -> Starlette:
    """The fake as an ASGI app; ``app.state.data`` is its :class:`AnalyticsData`."""
    data = AnalyticsData(seed=seed, anchor=anchor)
    api = AnalyticsApi(data, token)
    app = Starlette(
        routes=[
            Route("/v1/deals", api.list_deals, methods=["GET"]),
            Route("/v1/deals", api.create_deal, methods=["POST"]),
            Route("/v1/deals/search", api.search_deals, methods=["POST"]),
            Route("/v1/deals/summary", api.deal_summary, methods=["GET"]),
            Route("/v1/quarters/{quarter}/summary", api.quarter_summary, methods=["GET"]),
            Route("/v1/accounts", api.list_accounts, methods=["GET"]),
            Route("/v1/tickets", api.list_tickets, methods=["GET"]),
            Route("/_sandbox/deals", api.sandbox_add_deal, methods=["POST"]),
        ]
    )
    app.state.data = data
    app.state.token = token
    return app
