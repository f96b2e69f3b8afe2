"""The Pipedrive source: deal counts and value sums.

Which API answers (checked against Pipedrive's changelog, November 2026):

* ``GET /api/v1/deals/summary`` when no time window is asked for. It has no v2 replacement and
  is not among the deprecated v1 endpoints; it answers status/pipeline/stage/owner/filter
  questions in one call: ``data.total_count``, ``data.values_total.<CUR>.{value,count}`` and
  ``data.total_currency_converted_value`` (in the company's default currency).
* ``GET /api/v2/deals`` (cursor paging, ``additional_data.next_cursor``, at most 500 a page)
  for everything else. ``GET /v1/deals`` was deprecated in favour of it on 2025-04-14 and has
  been out of support since 2026-08-01, and v2 costs half the rate-limit tokens. The listing
  cannot filter on ``won_time``, so a window asks for ``updated_since=<window start>`` — a deal
  won (lost, closed, added) on or after that instant was necessarily updated on or after it, so
  nothing is missed — and the window itself is applied here, on each deal's own field.
  Narrowing fields are also re-checked here, because Pipedrive ignores them when ``filter_id``
  is given.

Money: a sum without ``currency`` uses the summary's converted total; over a listing it is only
allowed when every matching deal has the same currency, because adding euros to dollars is a
number that looks right and is not. Values are read from the JSON text as Decimal, never float.

Several metrics that need the same listing (won count and won value this quarter, say) share one
pass over the pages: Pipedrive charges every page against the company's daily token budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from connectors.pipedrive.models import PipedriveConnection, PipedriveQuery
from okrsync.errors import (
    Blame,
    ConnectorError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.redaction import Redactor
from okrsync.sdk.budget import HeaderObserver
from okrsync.sdk.connector import failed_reading
from okrsync.sdk.http import ErrorAction, ErrorRule
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import CycleWindow, Query, Reading, digest
from okrsync.sdk.paging import CursorPaginator

SUMMARY_PATH = "/api/v1/deals/summary"
DEALS_PATH = "/api/v2/deals"
DAILY_REMAINING = "x-daily-ratelimit-token-remaining"
_SHOWN = 60

DAILY_BUDGET_SPENT = ErrorRule(
    ErrorAction.FAIL,
    QuotaExhaustedError,
    "the company's daily Pipedrive API token budget is spent (it resets at midnight)",
)


# --- vendor hooks for the HTTP engine ------------------------------------------------------


def seconds_to_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
    return (midnight - now).total_seconds()


def daily_budget_hold(headers: httpx.Headers) -> float | None:
    """Hold the connection until midnight (UTC) once the daily token budget reads 0.

    The header is not in Pipedrive's reference but is sent on token-budget plans (observed, and
    confirmed by Pipedrive staff to be missing now and then), so its absence means nothing.
    """
    remaining = headers.get(DAILY_REMAINING)
    if remaining is None:
        return None
    try:
        left = float(remaining.strip())
    except ValueError:
        return None
    return seconds_to_midnight() if left <= 0 else None


def classify(response: httpx.Response) -> ErrorRule | None:
    """A 429 for the spent *daily* budget is not worth retrying in place: pause instead."""
    if response.status_code != 429:
        return None
    if (response.headers.get(DAILY_REMAINING) or "").strip() == "0":
        return DAILY_BUDGET_SPENT
    body = json.loads(response.text)  # a ValueError leaves the verdict to the status table
    if isinstance(body, dict) and "budget" in str(body.get("error", "")).lower():
        return DAILY_BUDGET_SPENT
    return None


def describe_error(response: httpx.Response) -> str | None:
    """``error`` plus ``error_info`` unless the latter is the usual link to the docs."""
    try:
        body = json.loads(response.text)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    parts = [body["error"]]
    info = body.get("error_info")
    if isinstance(info, str) and info.strip() and "developers.pipedrive.com" not in info:
        parts.append(info)
    return "; ".join(parts)


class RedactingLogFilter(logging.Filter):
    """Masks the token in httpx's own request log line, which prints the full URL at INFO.

    okrsync does not route stdlib logging anywhere by default, but an operator who turns it on
    (or a test runner capturing logs) must not find ``?api_token=…`` there.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# --- reading answers --------------------------------------------------------------------------


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise VendorResponseError(f"{where} should be a number, got {_shorten(repr(value))}")
    number = Decimal(value)
    if not number.is_finite():
        raise VendorResponseError(f"{where} should be a finite number, got {value!r}")
    return number


def parse_time(value: Any, where: str) -> datetime | None:
    """A Pipedrive time: ``2026-10-03T12:00:00Z`` (v2) or ``2026-10-03 12:00:00`` (v1, UTC)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise VendorResponseError(f"{where} should be a time, got {_shorten(repr(value))}")
    try:
        when = datetime.fromisoformat(value.strip().replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise VendorResponseError(f"{where} is not a time: {_shorten(value)!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _envelope(document: Any, what: str) -> Any:
    """``data`` of a ``{"success": true, "data": …}`` envelope, or a readable error."""
    if not isinstance(document, dict):
        raise VendorResponseError(f"{what}: expected a JSON object, got {type(document).__name__}")
    if document.get("success") is False:
        said = document.get("error") or "no reason given"
        raise VendorResponseError(
            f"{what}: Pipedrive answered success=false: {_shorten(str(said))}"
        )
    if "data" not in document:
        raise VendorResponseError(f"{what}: the answer has no 'data'")
    return document["data"]


def next_cursor(document: dict[str, Any]) -> object:
    """A v2 listing page's cursor for the next page (absent or null on the last)."""
    return document["additional_data"]["next_cursor"]


@dataclass(frozen=True)
class Bounds:
    """A window resolved for one cycle: ``start <= t < end`` in UTC."""

    field: str
    start: datetime
    end: datetime


def _day(text: str, cycle: CycleWindow) -> date:
    if text == "{cycle_start}":
        return cycle.start
    if text == "{cycle_end}":
        return cycle.end
    return date.fromisoformat(text)


def resolve_window(spec: PipedriveQuery, cycle: CycleWindow) -> Bounds | None:
    if spec.window is None:
        return None
    first = _day(spec.window.start, cycle)
    last = _day(spec.window.end, cycle)
    if first > last:
        raise QueryError(
            f"the window on {spec.window.field} starts {first} after it ends {last}",
            blame=Blame.CONFIG,
        )
    return Bounds(
        spec.window.field,
        datetime.combine(first, time(0), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC),
    )


@dataclass(frozen=True)
class Plan:
    """One request sequence; queries with equal plans share it."""

    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def listing(self) -> bool:
        return self.path == DEALS_PATH


def plan_for(spec: PipedriveQuery, cycle: CycleWindow) -> Plan:
    status = spec.effective_status()
    pairs: list[tuple[str, object]]
    if spec.uses_summary():
        pairs = [
            ("status", status),
            ("filter_id", spec.filter_id),
            ("user_id", spec.owner_id),
            ("pipeline_id", spec.pipeline_id),
            ("stage_id", spec.stage_id),
        ]
        return Plan(SUMMARY_PATH, tuple((k, str(v)) for k, v in pairs if v is not None))
    bounds = resolve_window(spec, cycle)
    since = bounds.start.strftime("%Y-%m-%dT%H:%M:%SZ") if bounds is not None else None
    pairs = [
        ("filter_id", spec.filter_id),
        ("owner_id", spec.owner_id),
        ("pipeline_id", spec.pipeline_id),
        ("stage_id", spec.stage_id),
        ("status", status),
        ("updated_since", since),
    ]
    return Plan(DEALS_PATH, tuple((k, str(v)) for k, v in pairs if v is not None))


def _matches(deal: Mapping[str, Any], spec: PipedriveQuery, bounds: Bounds | None) -> bool:
    status = spec.effective_status()
    if status is not None and deal.get("status") != status:
        return False
    for field, wanted in (
        ("pipeline_id", spec.pipeline_id),
        ("stage_id", spec.stage_id),
        ("owner_id", spec.owner_id),
    ):
        if wanted is not None and deal.get(field) != wanted:
            return False
    if spec.currency is not None and deal.get("currency") != spec.currency:
        return False
    if bounds is not None:
        when = parse_time(deal.get(bounds.field), f"deal {deal.get('id')} {bounds.field}")
        if when is None or not bounds.start <= when < bounds.end:
            return False
    return True


def reduce_deals(
    deals: Sequence[Mapping[str, Any]], spec: PipedriveQuery, cycle: CycleWindow
) -> Decimal:
    """The metric's number over the listed deals."""
    bounds = resolve_window(spec, cycle)
    chosen = [deal for deal in deals if _matches(deal, spec, bounds)]
    if spec.measure == "count":
        return Decimal(len(chosen))
    currencies = sorted({str(deal.get("currency")) for deal in chosen})
    if len(currencies) > 1:
        raise QueryError(
            f"the matching deals are in several currencies ({', '.join(currencies)}); "
            "set currency: to sum one of them",
            blame=Blame.CONFIG,
        )
    total = Decimal(0)
    for deal in chosen:
        value = deal.get("value")
        if value is not None:
            total += _number(value, f"deal {deal.get('id')} value")
    return total


def read_summary(data: Any, spec: PipedriveQuery) -> Decimal:
    """The metric's number in a deals summary's ``data``."""
    if not isinstance(data, dict):
        raise VendorResponseError("deals summary: 'data' should be an object")
    totals = data.get("values_total") or {}  # an empty company may answer [] here
    if not isinstance(totals, dict):
        raise VendorResponseError("deals summary: 'values_total' should be an object")
    if spec.currency is not None:
        group = totals.get(spec.currency)
        if group is None:
            return Decimal(0)
        if not isinstance(group, dict):
            raise VendorResponseError(
                f"deals summary: values_total.{spec.currency} is not an object"
            )
        key = "count" if spec.measure == "count" else "value"
        return _number(group.get(key, 0), f"values_total.{spec.currency}.{key}")
    count = _number(data.get("total_count"), "data.total_count")
    if spec.measure == "count":
        return count
    converted = data.get("total_currency_converted_value")
    if converted is None and count == 0:
        return Decimal(0)
    return _number(converted, "data.total_currency_converted_value")


def _subject(queries: Sequence[Query[PipedriveQuery]]) -> str:
    if len(queries) == 1:
        return queries[0].subject
    names = sorted({name for q in queries for name in q.metrics})
    return f"metric {names[0]!r}" if len(names) == 1 else f"metrics {', '.join(names)}"


# --- the source ------------------------------------------------------------------------------


class PipedriveSource(HttpSource[PipedriveConnection, PipedriveQuery]):
    """Deal counts and value sums from one Pipedrive company."""

    query_model = PipedriveQuery
    rate_limit_backoff = 2.0  # Pipedrive's burst window is 2 seconds
    classify = classify
    describe_error = describe_error

    def __init__(self, name: str, config: PipedriveConnection) -> None:
        super().__init__(name, config)
        self._auth_params: dict[str, str] = {}
        self._log_filter: RedactingLogFilter | None = None
        if config.token_in == "query":  # noqa: S105 - a mode, not a password
            self._auth_params = {"api_token": config.api_token.get_secret_value()}
            self._log_filter = RedactingLogFilter(self.secrets())
            logging.getLogger("httpx").addFilter(self._log_filter)

    def base_url(self) -> str:
        return self.config.base_url()

    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.token_in == "header":  # noqa: S105 - a mode, not a password
            headers["x-api-token"] = self.config.api_token.get_secret_value()
        return headers

    def secrets(self) -> list[str]:
        # The token may travel in the URL: register every spelling it can take there.
        token = self.config.api_token.get_secret_value()
        return [*super().secrets(), quote(token, safe=""), quote_plus(token)]

    def budget_observers(self) -> list[HeaderObserver]:
        return [daily_budget_hold]

    async def aclose(self) -> None:
        if self._log_filter is not None:
            logging.getLogger("httpx").removeFilter(self._log_filter)
            self._log_filter = None
        await super().aclose()

    def batch_key(self, spec: PipedriveQuery) -> str:
        # The cycle is part of the plan too; fetch() groups on the full plan.
        return json.dumps([spec.uses_summary(), spec.model_dump(mode="json")], sort_keys=True)

    # --- answering ------------------------------------------------------------------------

    async def fetch_one(self, query: Query[PipedriveQuery]) -> Reading:
        """Answer one query; raises the ConnectorError that prevented an answer."""
        (reading,) = await self._answer(plan_for(query.spec, query.cycle), [query], raising=True)
        return reading

    async def fetch(self, queries: Sequence[Query[PipedriveQuery]]) -> list[Reading]:
        """Answer every query, sharing one request sequence between queries with equal plans."""
        readings: dict[int, Reading] = {}
        groups: dict[Plan, list[int]] = {}
        for index, query in enumerate(queries):
            try:
                groups.setdefault(plan_for(query.spec, query.cycle), []).append(index)
            except ConnectorError as exc:
                readings[index] = failed_reading(query, exc.for_subject(self.name, query.subject))
        limit = asyncio.Semaphore(self.max_concurrency)

        async def run(plan: Plan, indexes: list[int]) -> None:
            async with limit:
                answers = await self._answer(plan, [queries[i] for i in indexes], raising=False)
            readings.update(zip(indexes, answers, strict=True))

        await asyncio.gather(*(run(plan, indexes) for plan, indexes in groups.items()))
        return [readings[index] for index in range(len(queries))]

    async def _answer(
        self, plan: Plan, queries: Sequence[Query[PipedriveQuery]], *, raising: bool
    ) -> list[Reading]:
        subject = _subject(queries)
        try:
            if plan.listing:
                deals, bodies = await self._list(plan, subject)
            else:
                summary, bodies = await self._summary(plan, subject)
        except ConnectorError as exc:
            self._polish(exc)
            named = exc.for_subject(self.name, subject)
            if raising:
                raise named from None
            return [failed_reading(query, named) for query in queries]
        raw = digest(b"".join(bodies))
        readings = []
        for query in queries:
            try:
                if plan.listing:
                    value = reduce_deals(deals, query.spec, query.cycle)
                else:
                    value = read_summary(summary, query.spec)
            except ConnectorError as exc:
                self._polish(exc)
                named = exc.for_subject(self.name, query.subject)
                if raising:
                    raise named from None
                readings.append(failed_reading(query, named))
                continue
            readings.append(
                Reading(
                    key=query.key,
                    value=value,
                    query_text=query.spec.query_text(),
                    fetched_at=datetime.now(UTC),
                    raw_digest=raw,
                    api_calls=len(bodies),
                )
            )
        return readings

    def _polish(self, exc: ConnectorError) -> None:
        exc.message = self.client.redact(exc.message)
        if isinstance(exc, QuotaExhaustedError) and exc.resume_at is None:
            exc.resume_at = datetime.now(UTC).timestamp() + seconds_to_midnight()

    async def _get(self, path: str, params: Mapping[str, str], subject: str) -> tuple[Any, bytes]:
        response = await self.client.request(
            "GET", path, params={**params, **self._auth_params}, subject=subject
        )
        self.client.parse_json(response, subject=subject)  # the readable error, if any
        # Parsed again with Decimal so that money keeps its exact digits.
        return json.loads(response.content, parse_float=Decimal), response.content

    async def _summary(self, plan: Plan, subject: str) -> tuple[Any, list[bytes]]:
        document, body = await self._get(plan.path, dict(plan.params), subject)
        return _envelope(document, "deals summary"), [body]

    async def _list(self, plan: Plan, subject: str) -> tuple[list[Any], list[bytes]]:
        params = {**dict(plan.params), "limit": str(self.config.page_size)}
        deals: list[Any] = []
        bodies: list[bytes] = []
        pages = CursorPaginator(next_cursor, what="deals", max_pages=self.config.max_pages)
        while not pages.finished:
            document, body = await self._get(plan.path, pages.params(params, "cursor"), subject)
            bodies.append(body)
            data = _envelope(document, f"deals page {len(bodies)}")
            if data is None:
                data = []
            if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
                raise VendorResponseError(f"deals page {len(bodies)}: 'data' should be a list")
            deals.extend(data)
            pages.advance(document)
        return deals, bodies
