"""The HubSpot source: counts and sums over CRM objects through the v3 search endpoint.

* A count is one request: ``limit: 1`` and the answer's ``total``.
* A sum pages through every match (200 a page) and adds the property up exactly (Decimal; HubSpot
  sends every property value as a string). When a window holds more records than the search
  endpoint will page through (10,000), the window is halved on a date property until each piece
  fits (see :mod:`connectors.hubspot.search`). The ``after`` cursors are followed by the SDK's
  :class:`~okrsync.sdk.paging.CursorPaginator`: a repeated cursor, or more pages than the
  window's records fill, fails the metric.
* Pipelines and stages may be named by label (``stage: "Closed Won"``) or picked by state
  (``stage_state: open``): labels are resolved to ids through ``/crm/v3/pipelines/{object}``,
  cached per connection.

Rate limits. Search calls are limited per account (5 a second, shared by every app) and their
answers carry none of the ``X-HubSpot-RateLimit-*`` headers, so the connection paces itself with
a token bucket (``search_requests_per_second``, 4 by default). Other calls do carry the headers;
the connection's budget observers read the burst window (:mod:`connectors.hubspot.ratelimit`)
and the daily one (:func:`daily_limit_hold`). A 429 says which limit was hit in its body's
``policyName``: ``SECONDLY`` and ``TEN_SECONDLY_ROLLING`` are waited out and retried, ``DAILY``
pauses the connection until the next midnight (UTC — the account's own time zone is not visible
to the API, so this may be early, never late by more than a day).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from connectors.hubspot.models import PIPELINE_OBJECTS, HubSpotConnection, HubSpotQuery
from connectors.hubspot.ratelimit import burst_window_hold
from connectors.hubspot.search import (
    CycleBounds,
    Resolved,
    Window,
    base_groups,
    cycle_window,
    search_body,
    whole_range,
)
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RateLimitedError,
    VendorResponseError,
)
from okrsync.sdk.budget import BudgetPolicy, HeaderObserver
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, RetryPolicy
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import Query, Reading, as_decimal, digest
from okrsync.sdk.paging import CursorPaginator

ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        **DEFAULT_ERROR_TABLE,
        400: ErrorRule(ErrorAction.FAIL, QueryError, "HubSpot rejected the search"),
        401: ErrorRule(
            ErrorAction.REFRESH_CREDENTIALS,
            CredentialsError,
            "the access token was rejected (check the private app token)",
        ),
        403: ErrorRule(
            ErrorAction.FAIL,
            CredentialsError,
            "the access token may not read this (check the private app's scopes)",
        ),
    }
)
_SECONDLY = ErrorRule(
    ErrorAction.RATE_LIMITED, RateLimitedError, "HubSpot's per-second limit was reached"
)
_ROLLING = ErrorRule(
    ErrorAction.RATE_LIMITED, RateLimitedError, "HubSpot's 10-second burst limit was reached"
)
_DAILY = ErrorRule(
    ErrorAction.FAIL, QuotaExhaustedError, "HubSpot's daily API limit is spent; pausing"
)


def seconds_to_utc_midnight(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).date()
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    return (midnight - now).total_seconds()


def daily_limit_hold(headers: httpx.Headers) -> float | None:
    """``X-HubSpot-RateLimit-Daily-Remaining: 0`` holds the connection until the day turns."""
    remaining = headers.get("x-hubspot-ratelimit-daily-remaining")
    if remaining is not None and remaining.strip() == "0":
        return seconds_to_utc_midnight(datetime.now(UTC))
    return None


def describe_hubspot_error(response: httpx.Response) -> str | None:
    """``CATEGORY: message; detail; detail`` from HubSpot's error body (no correlation ids)."""
    try:
        body = json.loads(response.text)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    parts = [body["message"]]
    for detail in body.get("errors") or []:
        message = detail.get("message") if isinstance(detail, dict) else None
        if isinstance(message, str) and message not in parts:
            parts.append(message)
    kind = body.get("category") or body.get("errorType") or body.get("policyName")
    text = "; ".join(parts)
    return f"{kind}: {text}" if isinstance(kind, str) and kind else text


@dataclass
class _Tally:
    """What one query cost and saw, for its reading."""

    calls: int = 0
    bodies: list[bytes] = field(default_factory=list)


class HubSpotSource(HttpSource[HubSpotConnection, HubSpotQuery]):
    """Answers count and sum metrics over deals, contacts, companies, tickets…

    HubSpot counts per account, so the pace and its holds are in the connection's ``api``
    bucket, one for every replica of the daemon when the core shares it.
    """

    query_model = HubSpotQuery
    error_table = ERROR_TABLE
    describe_error = describe_hubspot_error

    # Waits, as class attributes so tests (and touchy accounts) can change them.
    initial_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 30.0
    secondly_wait: ClassVar[float] = 1.0  # HubSpot: "wait at least a second" after a search 429
    rolling_wait: ClassVar[float] = 10.0  # one whole burst window

    def __init__(self, name: str, config: HubSpotConnection) -> None:
        super().__init__(name, config)
        self._pipelines: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._pipeline_lock = asyncio.Lock()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}

    def secrets(self) -> list[str]:
        return [*self.config.secret_values(), self._token()]

    def _token(self) -> str:
        return self.config.access_token.get_secret_value().strip()

    def budget_policy(self) -> BudgetPolicy:
        """Paced for search, whose per-account limit no answer reports."""
        return replace(
            super().budget_policy(), requests_per_second=self.config.search_requests_per_second
        )

    def retry_policy(self) -> RetryPolicy:
        """A rate limit that names no wait is waited out for at least HubSpot's second."""
        return replace(super().retry_policy(), rate_limit_backoff=self.secondly_wait)

    # --- rate limits --------------------------------------------------------------------------

    def budget_observers(self) -> Sequence[HeaderObserver]:
        return (burst_window_hold, daily_limit_hold)

    def classifier(self) -> Callable[[httpx.Response], ErrorRule | None]:
        return self._classify

    def _classify(self, response: httpx.Response) -> ErrorRule | None:
        """Which limit a 429 is about, from its body's ``policyName``."""
        if response.status_code != 429:
            return None
        try:
            body = json.loads(response.text)
        except ValueError:
            return None  # not HubSpot's body: the status table decides
        policy = body.get("policyName") if isinstance(body, dict) else None
        if policy == "DAILY":
            self.client.budget.hold_until(seconds_to_utc_midnight(datetime.now(UTC)))
            return _DAILY
        if policy == "TEN_SECONDLY_ROLLING":
            self.client.budget.hold_until(self.rolling_wait)
            return _ROLLING
        if policy == "SECONDLY":
            self.client.budget.hold_until(self.secondly_wait)
            return _SECONDLY
        return None

    # --- answering ----------------------------------------------------------------------------

    async def fetch_one(self, query: Query[HubSpotQuery]) -> Reading:
        spec = query.spec
        subject = query.subject
        tally = _Tally()
        try:
            resolved = await self._resolve(spec, subject)
            bounds = CycleBounds.of(query.cycle)
            groups = base_groups(spec, resolved, bounds)
            window = cycle_window(spec, bounds)
            if spec.aggregate == "count":
                value = await self._count(spec, groups, window, subject, tally)
            else:
                value = await self._sum(spec, groups, window, subject, tally)
        except QuotaExhaustedError as exc:
            if exc.resume_at is None:
                exc.resume_at = time.time() + self.client.budget.held_for()
            raise exc.for_subject(self.name, subject) from None
        except ConnectorError as exc:
            raise exc.for_subject(self.name, subject) from None
        return Reading(
            key=query.key,
            value=value,
            query_text=spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(b"".join(tally.bodies)),
            api_calls=tally.calls,
        )

    async def _count(
        self,
        spec: HubSpotQuery,
        groups: list[list[dict[str, Any]]],
        window: Window | None,
        subject: str,
        tally: _Tally,
    ) -> Decimal:
        body = search_body(groups, window, properties=["hs_object_id"], limit=1)
        page = await self._search(spec.object, body, subject, tally)
        return Decimal(page["total"])

    async def _sum(
        self,
        spec: HubSpotQuery,
        groups: list[list[dict[str, Any]]],
        window: Window | None,
        subject: str,
        tally: _Tally,
    ) -> Decimal:
        assert spec.property is not None  # the model insists
        ceiling = self.config.search_result_limit
        values: dict[str, Decimal] = {}  # by record id: a record seen twice is added once
        pending: list[Window | None] = [window]
        while pending:
            piece = pending.pop()
            found = await self._page_all(spec, groups, piece, subject, tally, ceiling)
            if found is None:  # more than the ceiling: halve and ask again
                if piece is None:
                    piece = whole_range(spec)
                if not piece.splittable:
                    raise QueryError(
                        f"more than {ceiling} records share one {piece.field} timestamp; "
                        "the search cannot page through them"
                    )
                low, high = piece.halves()
                pending.extend([high, low])
                continue
            values.update(found)
        return sum(values.values(), Decimal(0))

    async def _page_all(
        self,
        spec: HubSpotQuery,
        groups: list[list[dict[str, Any]]],
        window: Window | None,
        subject: str,
        tally: _Tally,
        ceiling: int,
    ) -> dict[str, Decimal] | None:
        """Every match in ``window`` by id, or ``None`` when it holds more than ``ceiling``."""
        assert spec.property is not None
        limit = min(self.config.page_size, ceiling)
        found: dict[str, Decimal] = {}
        # A window that fits holds at most ``ceiling`` records: more pages than that takes
        # means HubSpot pages past its own total.
        pages = CursorPaginator(
            lambda page: page["paging"]["next"]["after"],
            what=f"{spec.object} search results",
            max_pages=math.ceil(ceiling / limit) + 1,
            start="0",
        )
        while not pages.finished:
            after = pages.token or "0"
            body = search_body(groups, window, properties=[spec.property], limit=limit, after=after)
            page = await self._search(spec.object, body, subject, tally)
            if page["total"] > ceiling:
                return None
            for record in page["results"]:
                number = self._number(record, spec.property)
                if number is not None:
                    found[str(record.get("id"))] = number
            following = pages.advance(page)
            if following is not None and following.isdigit() and int(following) >= ceiling:
                return None  # records were added while paging: the window no longer fits
        return found

    def _number(self, record: Any, name: str) -> Decimal | None:
        if not isinstance(record, dict) or not isinstance(record.get("properties"), dict):
            raise VendorResponseError("a search result has no properties object")
        raw = record["properties"].get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        try:
            number = as_decimal(raw)
        except (TypeError, ValueError, ArithmeticError):
            number = None
        if number is None or not number.is_finite():
            shown = str(raw)[:40]
            raise VendorResponseError(
                f"{name} of record {record.get('id')} is not a number: {shown!r}"
            )
        return number

    async def _search(
        self, object_type: str, body: dict[str, Any], subject: str, tally: _Tally
    ) -> dict[str, Any]:
        tally.calls += 1
        response = await self.client.request(
            "POST", f"/crm/v3/objects/{object_type}/search", json=body, subject=subject
        )
        tally.bodies.append(response.content)
        page = self.client.parse_json(response, subject=subject)
        if (
            not isinstance(page, dict)
            or not isinstance(page.get("total"), int)
            or isinstance(page.get("total"), bool)
            or not isinstance(page.get("results"), list)
        ):
            raise VendorResponseError(
                "the search answer lacks `total` or `results` (HTTP 200, not a search result)"
            )
        return page

    # --- pipelines ------------------------------------------------------------------------------

    async def _resolve(self, spec: HubSpotQuery, subject: str) -> Resolved:
        if not (spec.pipeline or spec.stage or spec.stage_state):
            return Resolved()
        api_type, pipeline_property, stage_property = PIPELINE_OBJECTS[spec.object]
        pipelines = await self._pipelines_of(api_type, subject)
        chosen = pipelines
        pipeline_id: str | None = None
        if spec.pipeline:
            match = _pick(pipelines, spec.pipeline)
            if not match:
                names = ", ".join(f"{p['label']!r} ({p['id']})" for p in pipelines)
                raise QueryError(f"no {api_type} pipeline {spec.pipeline!r}; there are: {names}")
            chosen = match[:1]
            pipeline_id = str(chosen[0]["id"])
        stages = [stage for p in chosen for stage in p["stages"]]
        ids: list[str] = []
        if spec.stage is not None:
            for wanted in spec.stage_list():
                found = _pick(stages, wanted)
                if not found:
                    where = (
                        f"pipeline {spec.pipeline!r}" if spec.pipeline else f"{api_type} pipelines"
                    )
                    names = ", ".join(sorted({repr(s["label"]) for s in stages}))
                    raise QueryError(f"no stage {wanted!r} in {where}; stages: {names}")
                ids.extend(str(s["id"]) for s in found)
        elif spec.stage_state is not None:
            ids = [str(s["id"]) for s in stages if _stage_state_matches(s, spec.stage_state)]
            if not ids:
                raise QueryError(f"no {spec.stage_state} stages in the {api_type} pipelines")
        stage_ids = tuple(dict.fromkeys(ids)) if ids else None
        return Resolved(
            pipeline_property if pipeline_id is not None else None,
            pipeline_id,
            stage_property if stage_ids else None,
            stage_ids,
        )

    async def _pipelines_of(self, object_type: str, subject: str) -> list[dict[str, Any]]:
        ttl = self.config.pipeline_cache_seconds
        async with self._pipeline_lock:  # concurrent metrics ask HubSpot once
            cached = self._pipelines.get(object_type)
            if cached is not None and time.monotonic() - cached[0] < ttl:
                return cached[1]
            document = await self.client.get_json(
                f"/crm/v3/pipelines/{object_type}", subject=subject
            )
            pipelines = _valid_pipelines(document)
            self._pipelines[object_type] = (time.monotonic(), pipelines)
            return pipelines


def _pick(items: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """Items whose id is ``wanted``; failing that, whose label is (case-insensitively)."""
    by_id = [item for item in items if str(item["id"]) == wanted]
    if by_id:
        return by_id
    folded = wanted.strip().casefold()
    return [item for item in items if str(item["label"]).strip().casefold() == folded]


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _stage_state_matches(stage: Mapping[str, Any], state: str) -> bool:
    metadata = stage.get("metadata") or {}
    closed = _flag(metadata.get("isClosed"))
    if state == "open":
        return not closed
    if state == "closed":
        return closed
    try:
        probability = Decimal(str(metadata.get("probability")))
    except ArithmeticError:
        return False
    return closed and probability == (1 if state == "won" else 0)


def _valid_pipelines(document: Any) -> list[dict[str, Any]]:
    results = document.get("results") if isinstance(document, dict) else None
    ok = isinstance(results, list) and all(
        isinstance(p, dict)
        and "id" in p
        and "label" in p
        and isinstance(p.get("stages"), list)
        and all(isinstance(s, dict) and "id" in s and "label" in s for s in p["stages"])
        for p in results
    )
    if not ok:
        raise VendorResponseError("the pipelines answer is not a list of pipelines with stages")
    assert isinstance(results, list)
    return results
