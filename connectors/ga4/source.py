"""The ``ga4`` source: key-result numbers from Google Analytics 4 reports.

Batching. GA4 charges quota tokens per report, not per metric, so metrics that share a property,
a cycle (date range), dimensions and filters are answered by ONE ``runReport`` with up to ten
metrics; when one property needs several such reports (different filters or dimensions), up to
five of them travel in one ``batchRunReports``. ``batch_key`` says which metrics may share.

Date range. ``startDate`` is the cycle's first day; ``endDate`` its last day once that is past,
else ``"today"`` — GA4 resolves ``today`` in the property's own time zone, which our clock does
not know. A cycle that has not started yet is not asked about.

One number. Without dimensions a report is one row (no row at all when there was no traffic:
that is 0). With dimensions the value is GA4's ``TOTAL`` row, or with ``row_filter`` the sum of
the rows whose dimension values match (0 when none does). Values arrive as strings and are read
as exact Decimals.

Quota. Every request asks for ``returnPropertyQuota``; when the property's tokens per hour (or
per day, or the project's share, or its server errors per hour) are spent, the connection stops
asking until the window turns and raises :class:`QuotaExhaustedError` with ``resume_at``, as it
does on a 429 ``RESOURCE_EXHAUSTED`` that says the tokens are gone. Other 429s (too many
concurrent requests) are retried with backoff: GA4 sends no ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import structlog

from connectors.ga4.auth import TokenProvider, load_key
from connectors.ga4.models import (
    MAX_METRICS_PER_REQUEST,
    MAX_REPORTS_PER_BATCH,
    GA4Connection,
    GA4Query,
)
from okrsync.errors import (
    Blame,
    ConnectorError,
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.sdk.connector import failed_reading
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, RetryPolicy
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import CycleWindow, Query, Reading, digest
from okrsync.sdk.paging import OffsetPaginator

log = structlog.get_logger()

ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, QueryError, "GA4 rejected the report request"),
    403: ErrorRule(ErrorAction.FAIL, CredentialsError, "permission denied"),
}
_QUOTA_SPENT = ErrorRule(ErrorAction.FAIL, QuotaExhaustedError, "GA4 property quota exhausted")
HOURLY_QUOTAS = ("tokensPerHour", "tokensPerProjectPerHour", "serverErrorsPerProjectPerHour")


def google_error(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def describe_google_error(response: httpx.Response) -> str | None:
    """``INVALID_ARGUMENT: Field sesions is not a valid metric…`` from Google's envelope."""
    error = google_error(response)
    if error is None or not isinstance(error.get("message"), str):
        return None
    status = error.get("status")
    return f"{status}: {error['message']}" if isinstance(status, str) else error["message"]


def classify(response: httpx.Response) -> ErrorRule | None:
    """A 429 saying the property's *tokens* are spent is a quota pause, not a retry."""
    if response.status_code != 429:
        return None
    error = google_error(response) or {}
    message = str(error.get("message", "")).lower()
    if "exhausted" in message and "token" in message:
        return _QUOTA_SPENT
    return None


def end_of_window(quota: str, now: datetime) -> datetime:
    """When an hourly (top of the hour) or daily (midnight, Pacific time) quota comes back."""
    if quota == "tokensPerDay":
        try:
            from zoneinfo import ZoneInfo

            pacific = now.astimezone(ZoneInfo("America/Los_Angeles"))
        except (ImportError, KeyError, ValueError):
            pacific = now
        midnight = pacific.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return midnight.astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def number(raw: Any, what: str) -> Decimal:
    if not isinstance(raw, str):
        raise VendorResponseError(f"{what} is not a GA4 metric value: {raw!r:.60}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise VendorResponseError(f"{what} is not a number: {raw!r:.60}") from None
    if not value.is_finite():
        raise VendorResponseError(f"{what} is {raw}, not a usable number")
    return value


@dataclass
class _Report:
    """Metrics of one property, cycle, dimension set and filter: one GA4 report."""

    property_id: str
    cycle: CycleWindow
    spec: GA4Query  # the first query's: dimensions and filters are the same for all
    queries: list[Query[GA4Query]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    @property
    def needs_rows(self) -> bool:
        return any(q.spec.row_filter for q in self.queries)


class GA4Source(HttpSource[GA4Connection, GA4Query]):
    """Answers GA4 metrics with as few reports as the API allows."""

    query_model = GA4Query
    initial_backoff = 1.0
    error_table = ERROR_TABLE
    classify = classify
    describe_error = describe_google_error

    def __init__(self, name: str, config: GA4Connection) -> None:
        super().__init__(name, config)
        self._tokens: TokenProvider | None = None
        self._paused_until: dict[str, tuple[datetime, str]] = {}  # property → (resume, quota)
        self.last_quota: dict[str, dict[str, Any]] = {}  # property → its latest propertyQuota

    def base_url(self) -> str:
        return self.config.api_url

    def retry_policy(self) -> RetryPolicy:
        # GA4 sends no Retry-After: a 429 (too many concurrent requests) waits like a 5xx.
        return replace(super().retry_policy(), rate_limit_backoff=self.initial_backoff)

    def credentials_refresher(self) -> Callable[[], Awaitable[None]]:
        return self._refresh_token

    # --- hooks a test (or a subclass) may override ---------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC)

    def clock(self) -> float:
        """The clock token expiry is measured with."""
        return self.now().timestamp()

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return super().api_calls + (self._tokens.calls if self._tokens else 0)

    @property
    def tokens(self) -> TokenProvider:
        if self._tokens is None:
            secret = self.config.credentials_json
            key = load_key(
                self.name,
                secret.get_secret_value() if secret is not None else None,
                self.config.credentials_file,
            )
            self.client.add_secret(key.private_key)
            self._tokens = TokenProvider(
                self.name,
                key,
                timeout=self.config.timeout,
                retry=self.retry_policy(),
                clock=self.clock,
            )
        return self._tokens

    async def aclose(self) -> None:
        await super().aclose()
        if self._tokens is not None:
            await self._tokens.aclose()

    async def _authorize(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {await self.tokens.token()}"

    async def _refresh_token(self) -> None:
        stale = self.client.headers.get("Authorization", "").removeprefix("Bearer ")
        token = await self.tokens.token(force=True, stale=stale)
        self.client.headers["Authorization"] = f"Bearer {token}"

    # --- batching ------------------------------------------------------------------------------

    def request_key(self, spec: GA4Query) -> str:
        """One ``batchRunReports`` carries reports of one property whatever their dimensions,
        so every metric of a property falls due together and travels in as few calls."""
        return str(spec.property_id or self.config.property_id)

    def batch_key(self, spec: GA4Query) -> str:
        return json.dumps(
            [
                spec.property_id or self.config.property_id,
                list(spec.dimensions),
                spec.dimension_filter(),
            ],
            sort_keys=True,
        )

    def plan(self, queries: Sequence[Query[GA4Query]]) -> tuple[list[_Report], list[Reading]]:
        """Group the queries into reports of at most ten metrics; refuse the unanswerable."""
        reports: dict[tuple[str, str, int], _Report] = {}
        failed: list[Reading] = []
        for query in queries:
            property_id = query.spec.property_id or self.config.property_id
            if property_id is None:
                error = QueryError(
                    "no GA4 property: set property_id on the metric or the connection"
                )
                failed.append(failed_reading(query, error.for_subject(self.name, query.subject)))
                continue
            group = (self.batch_key(query.spec), repr(query.cycle), 0)
            while True:
                report = reports.get(group)
                if report is None:
                    report = reports[group] = _Report(property_id, query.cycle, query.spec)
                if query.spec.metric in report.metrics:
                    break
                if len(report.metrics) < MAX_METRICS_PER_REQUEST:
                    report.metrics.append(query.spec.metric)
                    break
                group = (group[0], group[1], group[2] + 1)
            report.queries.append(query)
        return list(reports.values()), failed

    async def fetch(self, queries: Sequence[Query[GA4Query]]) -> list[Reading]:
        reports, failed = self.plan(queries)
        by_key: dict[str, Reading] = {r.key: r for r in failed}
        per_property: dict[str, list[_Report]] = {}
        for report in reports:
            per_property.setdefault(report.property_id, []).append(report)
        batches = [
            group[i : i + MAX_REPORTS_PER_BATCH]
            for group in per_property.values()
            for i in range(0, len(group), MAX_REPORTS_PER_BATCH)
        ]
        limit = asyncio.Semaphore(self.max_concurrency)

        async def run(batch: list[_Report]) -> None:
            async with limit:
                for reading in await self._answer(batch):
                    by_key[reading.key] = reading

        await asyncio.gather(*(run(batch) for batch in batches))
        return [by_key[q.key] for q in queries]

    async def fetch_one(self, query: Query[GA4Query]) -> Reading:
        (reading,) = await self.fetch([query])
        if reading.error is not None:
            raise reading.error
        return reading

    # --- one request (runReport or batchRunReports) --------------------------------------------

    def request_body(self, report: _Report, offset: int = 0) -> dict[str, Any]:
        spec = report.spec
        today = self.now().date()
        if report.cycle.start > today:
            raise ConnectorError(
                f"cycle {report.cycle.id} starts on {report.cycle.start}: nothing to report yet",
                blame=Blame.TRANSIENT,
            )
        end = report.cycle.end.isoformat() if report.cycle.end < today else "today"
        body: dict[str, Any] = {
            "dateRanges": [{"startDate": report.cycle.start.isoformat(), "endDate": end}],
            "metrics": [{"name": name} for name in report.metrics],
        }
        if spec.dimensions:
            body["dimensions"] = [{"name": name} for name in spec.dimensions]
            body["metricAggregations"] = ["TOTAL"]
        if (expression := spec.dimension_filter()) is not None:
            body["dimensionFilter"] = expression
        body["limit"] = str(self.config.page_size)
        if offset:
            body["offset"] = str(offset)
        body["returnPropertyQuota"] = True
        return body

    async def _answer(self, batch: list[_Report]) -> list[Reading]:
        property_id = batch[0].property_id
        subject = self._subject(batch)
        try:
            self._check_paused(property_id)
            await self._authorize()
            bodies = [self.request_body(report) for report in batch]
            if len(batch) == 1:
                response = await self._post(
                    f"properties/{property_id}:runReport", bodies[0], subject
                )
                answers = [self.client.parse_json(response, subject=subject)]
            else:
                response = await self._post(
                    f"properties/{property_id}:batchRunReports", {"requests": bodies}, subject
                )
                document = self.client.parse_json(response, subject=subject)
                found = document.get("reports") if isinstance(document, dict) else None
                if not isinstance(found, list) or len(found) != len(batch):
                    count = len(found) if isinstance(found, list) else 0
                    raise VendorResponseError(
                        f"batchRunReports answered {count} reports for {len(batch)}"
                    )
                answers = found
        except ConnectorError as exc:
            error = self._explain(exc, property_id)
            return [
                failed_reading(q, self._copy(error, q.subject)) for r in batch for q in r.queries
            ]
        raw = digest(response.content)
        readings: list[Reading] = []
        for index, (report, answer) in enumerate(zip(batch, answers, strict=True)):
            readings.extend(await self._readings(report, answer, raw, calls=1 if index == 0 else 0))
        return readings

    async def _post(self, path: str, body: dict[str, Any], subject: str) -> httpx.Response:
        url = f"{self.config.api_url.rstrip('/')}/v1beta/{path}"
        return await self.client.request("POST", url, json=body, subject=subject)

    async def _readings(self, report: _Report, answer: Any, raw: str, calls: int) -> list[Reading]:
        try:
            if not isinstance(answer, dict):
                raise VendorResponseError("a report in the answer is not a JSON object")
            self._observe_quota(report.property_id, answer.get("propertyQuota"))
            rows = list(answer.get("rows") or [])
            if report.needs_rows:
                rows, calls = await self._all_rows(report, answer, calls)
            values = {q.key: self._value(q.spec, answer, rows) for q in report.queries}
        except ConnectorError as exc:
            error = self._explain(exc, report.property_id)
            return [failed_reading(q, self._copy(error, q.subject)) for q in report.queries]
        fetched = datetime.now(UTC)
        return [
            Reading(
                key=q.key,
                value=values[q.key],
                query_text=q.spec.query_text(),
                fetched_at=fetched,
                raw_digest=raw,
                api_calls=calls if i == 0 else 0,
            )
            for i, q in enumerate(report.queries)
        ]

    async def _all_rows(
        self, report: _Report, answer: dict[str, Any], calls: int
    ) -> tuple[list[Any], int]:
        """Every row of a report whose first page is ``answer``, read at growing offsets up to
        the first page's ``rowCount``; also the calls spent so far."""
        rows = list(answer.get("rows") or [])
        row_count = answer.get("rowCount")
        total = row_count if isinstance(row_count, int) else len(rows)
        pages = OffsetPaginator(
            lambda page: (page.get("rows") or []) if isinstance(page, dict) else [],
            page_size=self.config.page_size,
            total_of=lambda page: total,
            what="rows",
        )
        pages.advance(answer)
        while not pages.finished:
            self._check_paused(report.property_id)
            await self._authorize()
            page = self.client.parse_json(
                await self._post(
                    f"properties/{report.property_id}:runReport",
                    self.request_body(report, offset=pages.token or 0),
                    self._subject([report]),
                )
            )
            calls += 1
            pages.advance(page)
            if isinstance(page, dict):
                self._observe_quota(report.property_id, page.get("propertyQuota"))
                rows.extend(page.get("rows") or [])
        return rows, calls

    # --- reading a report ----------------------------------------------------------------------

    def _value(self, spec: GA4Query, answer: dict[str, Any], rows: list[Any]) -> Decimal:
        headers = [h.get("name") for h in answer.get("metricHeaders") or [] if isinstance(h, dict)]
        if spec.metric not in headers:
            raise VendorResponseError(f"the report has no column for metric {spec.metric!r}")
        column = headers.index(spec.metric)
        what = f"GA4 metric {spec.metric}"
        if not spec.dimensions:
            return self._cell(rows[0], column, what) if rows else Decimal(0)
        if spec.row_filter is None:
            totals = answer.get("totals") or []
            if totals:
                return self._cell(totals[0], column, what)
            if rows:
                raise VendorResponseError("the report has rows but no TOTAL row")
            return Decimal(0)
        names = [h.get("name") for h in answer.get("dimensionHeaders") or [] if isinstance(h, dict)]
        wanted = {names.index(k): v for k, v in spec.row_filter.items() if k in names}
        if len(wanted) != len(spec.row_filter):
            raise VendorResponseError("the report lacks a dimension named in row_filter")
        total = Decimal(0)
        for row in rows:
            values = [d.get("value") for d in row.get("dimensionValues") or []]
            if all(i < len(values) and values[i] == v for i, v in wanted.items()):
                total += self._cell(row, column, what)
        return total

    @staticmethod
    def _cell(row: Any, column: int, what: str) -> Decimal:
        cells = row.get("metricValues") if isinstance(row, dict) else None
        if (
            not isinstance(cells, list)
            or column >= len(cells)
            or not isinstance(cells[column], dict)
        ):
            raise VendorResponseError(f"{what}: the row has no value in column {column}")
        return number(cells[column].get("value"), what)

    # --- quota ---------------------------------------------------------------------------------

    def _observe_quota(self, property_id: str, quota: Any) -> None:
        if not isinstance(quota, dict):
            return
        self.last_quota[property_id] = quota
        now = self.now()
        for name, status in quota.items():
            remaining = status.get("remaining") if isinstance(status, dict) else None
            if not isinstance(remaining, int) or remaining > 0:
                continue
            if name not in (*HOURLY_QUOTAS, "tokensPerDay"):
                continue  # concurrentRequests: the next request may well find a free slot
            resume = end_of_window(name, now)
            current = self._paused_until.get(property_id)
            if current is None or current[0] < resume:
                self._paused_until[property_id] = (resume, name)
            log.warning("ga4_quota_spent", connection=self.name, property=property_id, quota=name)

    def _check_paused(self, property_id: str) -> None:
        paused = self._paused_until.get(property_id)
        if paused is None:
            return
        resume, quota = paused
        if self.now() >= resume:
            del self._paused_until[property_id]
            return
        raise QuotaExhaustedError(
            f"GA4 quota {quota} of property {property_id} is spent; pausing until "
            f"{resume:%Y-%m-%d %H:%M}Z",
            resume_at=resume.timestamp(),
        )

    # --- errors --------------------------------------------------------------------------------

    def _explain(self, exc: ConnectorError, property_id: str) -> ConnectorError:
        if isinstance(exc, CredentialsError) and exc.status_code == 403:
            email = self._tokens.key.client_email if self._tokens else "the service account"
            exc.message = (
                f"the service account {email} may not read GA4 property {property_id}: add it "
                "as a Viewer in GA4 Admin > Property access management, and check that the "
                f"Google Analytics Data API is enabled for its project ({exc.message})"
            )
        elif isinstance(exc, QuotaExhaustedError) and exc.resume_at is None:
            resume = end_of_window("tokensPerHour", self.now())
            exc.resume_at = resume.timestamp()
            self._paused_until[property_id] = (resume, "tokensPerHour")
        exc.message = self.client.redact(exc.message)
        return exc

    def _copy(self, error: ConnectorError, subject: str) -> ConnectorError:
        """One error per query, each naming its own metric (the batch shared the failure)."""
        kwargs: dict[str, Any] = {
            "connection": self.name,
            "subject": subject,
            "status_code": error.status_code,
            "blame": error.blame,
        }
        if isinstance(error, QuotaExhaustedError):
            return QuotaExhaustedError(error.message, resume_at=error.resume_at, **kwargs)
        return type(error)(error.message, **kwargs)

    @staticmethod
    def _subject(batch: list[_Report]) -> str:
        names = list(dict.fromkeys(m for r in batch for q in r.queries for m in q.metrics))
        return f"metric {names[0]!r}" if len(names) == 1 else f"metrics {', '.join(names)}"
