"""A sandbox Pipedrive company: deals across pipelines, stages, owners, statuses and currencies.

Wire format (Pipedrive's reference and changelog; [obs] = seen in real traffic reported in public
code, not in the reference; [guess] = not documented anywhere we could read):

* Auth: ``x-api-token: <token>`` header or ``api_token=<token>`` query parameter; otherwise
  ``401 {"success": false, "error": "unauthorized access", "errorCode": 401, "error_info": …}``.
* ``GET /api/v1/deals/summary`` (also ``/v1/…``): ``status``, ``filter_id``, ``user_id``,
  ``pipeline_id``, ``stage_id`` → ``{"success": true, "data": {"values_total": {CUR: {value,
  count, value_converted, value_formatted, value_converted_formatted}}, "weighted_values_total":
  {…}, "total_count", "total_currency_converted_value", …}}``. How the real summary combines
  ``filter_id`` with the other filters is not documented; here they are AND-ed [guess].
* ``GET /api/v2/deals``: ``filter_id`` (which makes Pipedrive ignore ``owner_id``,
  ``pipeline_id``, ``stage_id`` and ``status``, as documented), ``owner_id``, ``pipeline_id``,
  ``stage_id``, ``status`` (comma separated), ``updated_since``/``updated_until`` (RFC 3339),
  ``sort_by`` (id, update_time, add_time), ``sort_direction``, ``limit`` (default 100, at most
  500), ``cursor`` → ``{"success": true, "data": [...], "additional_data": {"next_cursor":
  "…" | null}}``; times as ``2026-10-03T12:00:00Z``.
* ``GET /api/v1/deals`` (deprecated, kept for old integrations): ``start``/``limit``, ``sort``
  (``won_time DESC``), ``user_id`` → ``additional_data.pagination`` with ``start``, ``limit``,
  ``more_items_in_collection`` and ``next_start``; ``data`` is ``null`` when empty; times as
  ``2026-10-03 12:00:00``; ``user_id`` is an object.
* Every answer carries ``x-ratelimit-limit``/``-remaining``/``-reset`` (a 2-second burst window)
  and the daily token budget ``x-daily-ratelimit-token-limit``/``-remaining`` [obs]. A spent
  burst window answers 429 ``{"success": false, "error": "Request over limit", "errorCode":
  429}`` [guess: body] with ``Retry-After``; a spent daily budget answers 429 ``{"success":
  false, "error": "daily request budget exceeded", "errorCode": 429}`` [obs] with
  ``Retry-After`` up to midnight UTC. Token costs per call (v2 list 10, v1 list 20, summary 20)
  are approximations of Pipedrive's published table.
* Validation errors: 400 ``{"success": false, "error": "…", "error_info": "…", "data": null,
  "additional_data": null}``.

Money: whole cents, sent as JSON numbers whose text is exactly the amount. Converted values use
the fixed ``RATES`` into the company currency (EUR), rounded to cents per currency group.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_TOKEN = "sandbox-pipedrive-token"  # noqa: S105 - the fake's own token
COMPANY_CURRENCY = "EUR"
RATES = {"EUR": Decimal("1"), "USD": Decimal("0.92"), "GBP": Decimal("1.17")}
SYMBOLS = {"EUR": "€", "USD": "US$", "GBP": "£"}
USERS = {
    101: "Amara Okafor",
    102: "Bo Lindqvist",
    103: "Chen Wei",
    104: "Dario Rossi",
    105: "Elif Kaya",
}
PIPELINES = {1: "New business", 2: "Expansion"}
# stage id → (pipeline id, name, deal probability %)
STAGES = {
    1: (1, "Qualified", 10),
    2: (1, "Demo scheduled", 30),
    3: (1, "Proposal made", 60),
    4: (1, "Negotiation", 80),
    5: (2, "Discovery", 20),
    6: (2, "Proposal", 50),
    7: (2, "Commit", 90),
}
DEAL_COUNT = 320
BURST_WINDOW = 2.0
DOCS_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
CENT = Decimal("0.01")
V2_LIST_COST, V1_LIST_COST, SUMMARY_COST = 10, 20, 20


def _utc(text: datetime) -> str:
    return text.strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1(text: datetime) -> str:
    return text.strftime("%Y-%m-%d %H:%M:%S")


def _money(value: Decimal) -> float:
    """A JSON number whose text is exactly ``value`` (whole cents round-trip through repr)."""
    return float(value)


def _formatted(value: Decimal, currency: str) -> str:
    return f"{SYMBOLS.get(currency, currency + ' ')}{value:,.2f}"


@dataclass
class FakeDeal:
    id: int
    title: str
    owner_id: int
    pipeline_id: int
    stage_id: int
    value: Decimal
    currency: str
    status: str  # open | won | lost | deleted
    add_time: datetime
    update_time: datetime
    won_time: datetime | None = None
    lost_time: datetime | None = None
    lost_reason: str | None = None
    probability: int | None = None

    @property
    def close_time(self) -> datetime | None:
        return self.won_time or self.lost_time

    def weight(self) -> Decimal:
        if self.status == "won":
            return Decimal(1)
        if self.status == "lost":
            return Decimal(0)
        percent = self.probability if self.probability is not None else STAGES[self.stage_id][2]
        return Decimal(percent) / 100

    def v2(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner_id": self.owner_id,
            "person_id": None,
            "org_id": None,
            "pipeline_id": self.pipeline_id,
            "stage_id": self.stage_id,
            "value": _money(self.value),
            "currency": self.currency,
            "add_time": _utc(self.add_time),
            "update_time": _utc(self.update_time),
            "stage_change_time": _utc(self.add_time),
            "is_deleted": self.status == "deleted",
            "is_archived": False,
            "status": self.status,
            "probability": self.probability,
            "lost_reason": self.lost_reason,
            "visible_to": 3,
            "close_time": _utc(self.close_time) if self.close_time else None,
            "won_time": _utc(self.won_time) if self.won_time else None,
            "lost_time": _utc(self.lost_time) if self.lost_time else None,
            "expected_close_date": None,
            "label_ids": [],
            "origin": "API",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
        }

    def v1(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "user_id": {"id": self.owner_id, "name": USERS[self.owner_id], "value": self.owner_id},
            "pipeline_id": self.pipeline_id,
            "stage_id": self.stage_id,
            "value": _money(self.value),
            "currency": self.currency,
            "add_time": _v1(self.add_time),
            "update_time": _v1(self.update_time),
            "status": self.status,
            "probability": self.probability,
            "lost_reason": self.lost_reason,
            "close_time": _v1(self.close_time) if self.close_time else None,
            "won_time": _v1(self.won_time) if self.won_time else None,
            "lost_time": _v1(self.lost_time) if self.lost_time else None,
            "active": self.status == "open",
            "deleted": self.status == "deleted",
            "formatted_value": _formatted(self.value, self.currency),
        }


# Saved filters: id → (name, predicate). Real filters are built in the UI; these stand in.
FILTERS: dict[int, tuple[str, Callable[[FakeDeal], bool]]] = {
    7: ("Big deals (≥ 20k)", lambda d: d.value >= 20_000),
    8: ("Amara and Bo", lambda d: d.owner_id in (101, 102)),
}


@dataclass
class _Window:
    started: float = 0.0
    used: int = 0


@dataclass
class PipedriveData:
    """The company's deals and its rate-limit counters; shared with the tests."""

    anchor: date
    seed: int = 7
    count: int = DEAL_COUNT
    burst_limit: int = 40
    daily_limit: int = 300_000
    deals: list[FakeDeal] = field(default_factory=list)
    daily_used: int = 0
    _windows: dict[str, _Window] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.deals:
            self.deals = self._generate()

    def _generate(self) -> list[FakeDeal]:
        rng = random.Random(self.seed)  # noqa: S311 - sample data, not secrets
        end = datetime.combine(self.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20)
        deals = []
        for number in range(1, self.count + 1):
            stage_id = rng.choice(list(STAGES))
            added = end - timedelta(days=rng.randint(20, 400), minutes=rng.randint(0, 1439))
            status = rng.choices(["open", "won", "lost", "deleted"], [38, 36, 24, 2])[0]
            deal = FakeDeal(
                id=number,
                title=f"Deal {number:04d}",
                owner_id=rng.choice(list(USERS)),
                pipeline_id=STAGES[stage_id][0],
                stage_id=stage_id,
                value=Decimal(rng.randint(500_00, 60_000_00)) / 100,
                currency=rng.choices(["EUR", "USD", "GBP"], [82, 13, 5])[0],
                status=status,
                add_time=added,
                update_time=added,
                probability=rng.choice([None, None, None, 25, 75]),
            )
            closed = min(end, added + timedelta(days=rng.randint(1, 150), hours=rng.randint(0, 23)))
            if status == "won":
                deal.won_time = closed
            elif status == "lost":
                deal.lost_time = closed
                deal.lost_reason = rng.choice(["Price", "Timing", "Competitor"])
            last = deal.close_time or added
            deal.update_time = min(end, last + timedelta(days=rng.randint(0, 20)))
            deals.append(deal)
        return deals

    def add_deal(self, **fields: Any) -> FakeDeal:
        """A new deal (so values move while a demo runs); ``fields`` override the defaults."""
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            values: dict[str, Any] = {
                "id": max(d.id for d in self.deals) + 1,
                "title": "New deal",
                "owner_id": 101,
                "pipeline_id": 1,
                "stage_id": 1,
                "value": Decimal("1000"),
                "currency": COMPANY_CURRENCY,
                "status": "open",
                "add_time": now,
                "update_time": now,
            }
            values.update(fields)
            deal = FakeDeal(**values)
            self.deals.append(deal)
        return deal

    # --- queries ---------------------------------------------------------------------------

    def visible(self) -> list[FakeDeal]:
        return [d for d in self.deals if d.status != "deleted"]

    def select(
        self,
        *,
        statuses: set[str] | None = None,
        owner_id: int | None = None,
        pipeline_id: int | None = None,
        stage_id: int | None = None,
        filter_id: int | None = None,
        updated_since: datetime | None = None,
        updated_until: datetime | None = None,
    ) -> list[FakeDeal]:
        deals = list(self.deals)
        if statuses is None or not statuses:
            deals = [d for d in deals if d.status != "deleted"]
        else:
            deals = [d for d in deals if d.status in statuses]
        if filter_id is not None:
            deals = [d for d in deals if FILTERS[filter_id][1](d)]
        if owner_id is not None:
            deals = [d for d in deals if d.owner_id == owner_id]
        if pipeline_id is not None:
            deals = [d for d in deals if d.pipeline_id == pipeline_id]
        if stage_id is not None:
            deals = [d for d in deals if d.stage_id == stage_id]
        if updated_since is not None:
            deals = [d for d in deals if d.update_time >= updated_since]
        if updated_until is not None:
            deals = [d for d in deals if d.update_time < updated_until]
        return deals

    @staticmethod
    def summary(deals: list[FakeDeal]) -> dict[str, Any]:
        groups: dict[str, list[FakeDeal]] = {}
        for deal in deals:
            groups.setdefault(deal.currency, []).append(deal)
        values_total: dict[str, Any] = {}
        weighted_total: dict[str, Any] = {}
        converted_sum = Decimal(0)
        weighted_converted_sum = Decimal(0)
        for currency, group in sorted(groups.items()):
            value = sum((d.value for d in group), Decimal(0))
            weighted = sum((d.value * d.weight() for d in group), Decimal(0)).quantize(
                CENT, ROUND_HALF_UP
            )
            converted = (value * RATES[currency]).quantize(CENT, ROUND_HALF_UP)
            converted_sum += converted
            weighted_converted_sum += (weighted * RATES[currency]).quantize(CENT, ROUND_HALF_UP)
            values_total[currency] = {
                "value": _money(value),
                "count": len(group),
                "value_converted": _money(converted),
                "value_formatted": _formatted(value, currency),
                "value_converted_formatted": _formatted(converted, COMPANY_CURRENCY),
            }
            weighted_total[currency] = {
                "value": _money(weighted),
                "count": len(group),
                "value_formatted": _formatted(weighted, currency),
            }
        return {
            "values_total": values_total,
            "weighted_values_total": weighted_total,
            "total_count": len(deals),
            "total_currency_converted_value": _money(converted_sum),
            "total_weighted_currency_converted_value": _money(weighted_converted_sum),
            "total_currency_converted_value_formatted": _formatted(converted_sum, COMPANY_CURRENCY),
            "total_weighted_currency_converted_value_formatted": _formatted(
                weighted_converted_sum, COMPANY_CURRENCY
            ),
        }

    # --- rate limits -------------------------------------------------------------------------

    def spend(self, token: str, cost: int) -> tuple[dict[str, str], str | None]:
        """Charge one call; the rate-limit headers, and the 429 reason if it is refused."""
        with self._lock:
            now = time.monotonic()
            window = self._windows.setdefault(token, _Window(started=now))
            if now - window.started >= BURST_WINDOW:
                window.started, window.used = now, 0
            reset = max(1, round(BURST_WINDOW - (now - window.started)))
            refused: str | None = None
            if self.daily_used + cost > self.daily_limit:
                refused = "daily request budget exceeded"
            elif window.used >= self.burst_limit:
                refused = "Request over limit"
            else:
                window.used += 1
                self.daily_used += cost
            headers = {
                "x-ratelimit-limit": str(self.burst_limit),
                "x-ratelimit-remaining": str(max(0, self.burst_limit - window.used)),
                "x-ratelimit-reset": str(reset),
                "x-daily-ratelimit-token-limit": str(self.daily_limit),
                "x-daily-ratelimit-token-remaining": str(
                    max(0, self.daily_limit - self.daily_used)
                ),
            }
            if refused == "daily request budget exceeded":
                headers["x-daily-ratelimit-token-remaining"] = "0"
                tomorrow = datetime.combine(
                    datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
                )
                headers["retry-after"] = str(int((tomorrow - datetime.now(UTC)).total_seconds()))
            elif refused is not None:
                headers["retry-after"] = str(reset)
            return headers, refused


# --- HTTP ------------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    body = {
        "success": False,
        "error": message,
        "error_info": DOCS_INFO,
        "data": None,
        "additional_data": None,
    }
    return _json(body, status, headers)


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _BadRequest(f"Validation failed: {name}: Expected number, received string") from None


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _BadRequest(f"Validation failed: {name}: Invalid RFC3339 datetime") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _filter_id(request: Request) -> int | None:
    filter_id = _int(request, "filter_id")
    if filter_id is not None and filter_id not in FILTERS:
        raise _BadRequest("Filter not found")
    return filter_id


def _limit(request: Request) -> int:
    limit = _int(request, "limit")
    if limit is None:
        return 100
    if not 1 <= limit <= 500:
        raise _BadRequest("Validation failed: limit: Number must be less than or equal to 500")
    return limit


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> int:
    try:
        padded = text + "=" * (-len(text) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _BadRequest("Validation failed: cursor: Invalid cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise _BadRequest("Validation failed: cursor: Invalid cursor")
    return offset


def pipedrive_app(
    *,
    token: str = DEFAULT_TOKEN,
    anchor: date | None = None,
    seed: int = 7,
    burst_limit: int = 40,
    daily_limit: int = 300_000,
) -> Starlette:
    """The fake; ``app.state.data`` is its :class:`PipedriveData`."""
    data = PipedriveData(
        anchor=anchor or datetime.now(UTC).date(),
        seed=seed,
        burst_limit=burst_limit,
        daily_limit=daily_limit,
    )

    def authorized(request: Request) -> bool:
        given = request.headers.get("x-api-token") or request.query_params.get("api_token")
        bearer = request.headers.get("authorization", "")
        return given == token or bearer == f"Bearer {token}"

    def endpoint(cost: int, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            if not authorized(request):
                body = {
                    "success": False,
                    "error": "unauthorized access",
                    "errorCode": 401,
                    "error_info": DOCS_INFO,
                }
                return _json(body, 401)
            headers, refused = data.spend(token, cost)
            if refused is not None:
                body = {
                    "success": False,
                    "error": refused,
                    "errorCode": 429,
                    "error_info": DOCS_INFO,
                }
                return _json(body, 429, headers)
            try:
                return _json(handler(request), 200, headers)
            except _BadRequest as exc:
                return _error(exc.message, 400, headers)

        return serve

    def summary(request: Request) -> Any:
        status = request.query_params.get("status")
        if status not in (None, "", "open", "won", "lost"):
            raise _BadRequest("Validation failed: status: Invalid enum value")
        deals = data.select(
            statuses={status} if status else None,
            filter_id=_filter_id(request),
            owner_id=_int(request, "user_id"),
            pipeline_id=_int(request, "pipeline_id"),
            stage_id=_int(request, "stage_id"),
        )
        return {"success": True, "data": data.summary(deals)}

    def list_v2(request: Request) -> Any:
        limit = _limit(request)
        raw_status = request.query_params.get("status") or ""
        statuses = {s.strip() for s in raw_status.split(",") if s.strip()}
        if statuses - {"open", "won", "lost", "deleted"}:
            raise _BadRequest("Validation failed: status: Invalid enum value")
        filter_id = _filter_id(request)
        ignored = filter_id is not None  # documented: filter_id overrides the other filters
        deals = data.select(
            statuses=None if ignored else statuses,
            filter_id=filter_id,
            owner_id=None if ignored else _int(request, "owner_id"),
            pipeline_id=None if ignored else _int(request, "pipeline_id"),
            stage_id=None if ignored else _int(request, "stage_id"),
            updated_since=_time(request, "updated_since"),
            updated_until=_time(request, "updated_until"),
        )
        sort_by = request.query_params.get("sort_by", "id")
        direction = request.query_params.get("sort_direction", "asc")
        if sort_by not in ("id", "update_time", "add_time") or direction not in ("asc", "desc"):
            raise _BadRequest("Validation failed: sort_by: Invalid enum value")
        deals.sort(key=lambda d: (getattr(d, sort_by), d.id), reverse=direction == "desc")
        cursor = request.query_params.get("cursor")
        offset = _decode_cursor(cursor) if cursor else 0
        page = deals[offset : offset + limit]
        more = offset + limit < len(deals)
        return {
            "success": True,
            "data": [d.v2() for d in page],
            "additional_data": {"next_cursor": _encode_cursor(offset + limit) if more else None},
        }

    def list_v1(request: Request) -> Any:
        limit = _limit(request)
        start = _int(request, "start") or 0
        status = request.query_params.get("status", "all_not_deleted")
        if status not in ("open", "won", "lost", "deleted", "all_not_deleted"):
            raise _BadRequest("Validation failed: status: Invalid enum value")
        deals = data.select(
            statuses=None if status == "all_not_deleted" else {status},
            filter_id=_filter_id(request),
            owner_id=_int(request, "user_id"),
            stage_id=_int(request, "stage_id"),
            pipeline_id=_int(request, "pipeline_id"),
        )
        sort = (request.query_params.get("sort") or "id ASC").split(",")[0].split()
        key, descending = sort[0], len(sort) > 1 and sort[1].upper() == "DESC"
        if key not in ("id", "add_time", "update_time", "won_time", "lost_time", "value"):
            raise _BadRequest(f"Unknown sort field: {key}")
        floor = datetime.min.replace(tzinfo=UTC)
        deals.sort(
            key=lambda d: (getattr(d, key) or floor, d.id),  # nulls first, as MySQL sorts
            reverse=descending,
        )
        page = deals[start : start + limit]
        more = start + limit < len(deals)
        pagination: dict[str, Any] = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
        }
        if more:
            pagination["next_start"] = start + limit
        return {
            "success": True,
            "data": [d.v1() for d in page] or None,
            "additional_data": {"pagination": pagination},
        }

    async def not_found(request: Request) -> Response:
        return _error("Unknown method .", 404)

    routes = [
        Route("/api/v1/deals/summary", endpoint(SUMMARY_COST, summary)),
        Route("/v1/deals/summary", endpoint(SUMMARY_COST, summary)),
        Route("/api/v2/deals", endpoint(V2_LIST_COST, list_v2)),
        Route("/api/v1/deals", endpoint(V1_LIST_COST, list_v1)),
        Route("/v1/deals", endpoint(V1_LIST_COST, list_v1)),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.data = data
    return app


def make_fake() -> Starlette:
    """The zero-argument factory the connector descriptor publishes."""
    return pipedrive_app()
