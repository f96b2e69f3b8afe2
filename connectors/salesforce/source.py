"""The Salesforce source: SOQL aggregates and report totals, batched, within the org's quota.

Batching: metrics whose SOQL renders to the same text for a cycle (typically one ``GROUP BY``
query read for several groups with ``group_value``) share one request, and so do metrics that
read the same report; :meth:`SalesforceSource.batch_key` names what they share.

Reading results:

* ``count`` — ``totalSize`` of the first page (``SELECT COUNT() …`` answers with no records; for
  a plain query totalSize is the whole count, so no further page is read);
* ``row`` — the one aggregate row (or the row whose grouping field equals ``group_value``), field
  ``value_field`` (default ``expr0``). A group absent from the answer had no records: its
  ``COUNT``/``SUM`` is 0. A null ``SUM``/``COUNT`` is 0 as well (no rows matched), but a null
  ``AVG``/``MIN``/``MAX`` has no value and is reported as such;
* ``sum`` — ``value_field`` added up over every record of every page (``nextRecordsUrl``, followed
  by the SDK's :class:`~okrsync.sdk.paging.NextUrlPaginator`), skipping nulls; page loops, links
  off ``/services/data/`` and more than ``max_pages`` pages are errors, never a short sum;
* ``report`` — ``factMap[fact_map_key].aggregates[aggregate_index].value`` of the Analytics API.

Every request passes through :class:`SalesforceBudget`, so the quota guards of
:mod:`connectors.salesforce.quota` see retries and refreshed requests too.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from connectors.salesforce.auth import TOKEN_ERROR_TABLE, TokenClient, describe_token_error
from connectors.salesforce.models import SalesforceConnection, SalesforceQuery
from connectors.salesforce.quota import WINDOW, DailyQuota
from connectors.salesforce.soql import aggregate_columns, render
from okrsync.errors import (
    ConnectorError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.connector import Source, failed_reading
from okrsync.sdk.http import ErrorAction, ErrorRule, HttpClient, RetryPolicy
from okrsync.sdk.ledger import SharedBucket, private_bucket
from okrsync.sdk.models import Query, Reading, as_decimal, digest
from okrsync.sdk.paging import NextUrlPaginator, read_pages

_LIMIT_EXCEEDED = ErrorRule(
    ErrorAction.FAIL,
    QuotaExhaustedError,
    "the org's API request limit is exhausted (REQUEST_LIMIT_EXCEEDED); pausing the connection",
)
_NO_VALUE_WHEN_EMPTY = frozenset({"AVG", "MIN", "MAX"})


def classify(response: httpx.Response) -> ErrorRule | None:
    """A 403 ``REQUEST_LIMIT_EXCEEDED`` is the org's quota, not a permission problem."""
    if response.status_code != 403:
        return None
    body = response.json()
    if isinstance(body, list) and any(
        isinstance(item, dict) and item.get("errorCode") == "REQUEST_LIMIT_EXCEEDED"
        for item in body
    ):
        return _LIMIT_EXCEEDED
    return None


class SalesforceBudget(CallBudget):
    """The connection's call budget plus the daily-quota guards, checked for every request.

    Our share of the org's allocation is counted in ``share`` (a bucket of the connection): when
    replicas of the daemon share their buckets, ``max_share_of_daily_limit`` is what all of
    them together send, not what each one sends.
    """

    def __init__(
        self,
        policy: BudgetPolicy,
        quota: DailyQuota,
        *,
        shared: SharedBucket | None = None,
        share: SharedBucket | None = None,
    ) -> None:
        super().__init__(policy, shared=shared, extra_observers=[quota.observe])
        self.quota = quota
        self._share = share if share is not None else private_bucket()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with super().slot():
            self.quota.check_org()
            window = self.quota.share_window()
            if window is None:
                raise self.quota.share_spent(0, WINDOW)
            taken = await self._share.take(window, max_wait=0.0)
            if not taken.waits:
                raise self.quota.share_spent(taken.used, taken.refused or WINDOW)
            self.quota.record_sent()
            yield


def _field(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a possibly dotted field (``Account.AnnualRevenue``)."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _same(value: object, wanted: str | int | bool) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return str(value).lower() == str(wanted).lower()
    return str(value) == str(wanted)


class SalesforceSource(Source[SalesforceConnection, SalesforceQuery]):
    """One Salesforce org: a token, an API client on its instance, the quota guards."""

    query_model = SalesforceQuery
    initial_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 30.0
    rate_limit_backoff: ClassVar[float] = 1.0
    clock: ClassVar[Callable[[], float]] = staticmethod(time.time)

    def __init__(self, name: str, config: SalesforceConnection) -> None:
        super().__init__(name, config)
        self.max_concurrency = config.max_concurrency
        self.quota = DailyQuota(
            max_share=config.max_share_of_daily_limit,
            org_reserve=config.org_reserve_share,
            clock=type(self).clock,
        )
        self._secrets = config.secret_values()
        self._login = HttpClient(
            connection=name,
            base_url=config.login_url,
            timeout=config.timeout,
            retry=self._retry_policy(),
            error_table=TOKEN_ERROR_TABLE,
            describe_error=describe_token_error,
            secrets=self._secrets,
        )
        self.tokens = TokenClient(name, config, self._login)
        self._api: HttpClient | None = None
        self._token_lock = asyncio.Lock()
        self._generation = 0
        self.refreshes = 0

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.config.max_retries + 1,
            initial_backoff=self.initial_backoff,
            max_backoff=self.max_backoff,
            rate_limit_backoff=self.rate_limit_backoff,
        )

    @property
    def api_calls(self) -> int:
        return self._login.calls + (self._api.calls if self._api is not None else 0)

    async def aclose(self) -> None:
        await self._login.aclose()
        if self._api is not None:
            await self._api.aclose()

    # --- credentials ----------------------------------------------------------------------------

    async def _client(self) -> HttpClient:
        if self._api is None:
            async with self._token_lock:
                if self._api is None:
                    token = await self.tokens.fetch()
                    self._api = HttpClient(
                        connection=self.name,
                        base_url=token.instance_url,
                        headers={"Authorization": f"Bearer {token.access_token}"},
                        timeout=self.config.timeout,
                        budget=SalesforceBudget(
                            BudgetPolicy(max_concurrency=self.config.max_concurrency),
                            self.quota,
                            shared=self.budgets.bucket("api"),
                            share=self.budgets.bucket("daily-share"),
                        ),
                        retry=self._retry_policy(),
                        classify=classify,
                        refresh_credentials=self._refresh,
                        secrets=[*self._secrets, token.access_token],
                    )
        return self._api

    async def _refresh(self) -> None:
        """A new token after ``401 INVALID_SESSION_ID``; one refresh serves concurrent callers."""
        seen = self._generation
        async with self._token_lock:
            if self._generation != seen or self._api is None:
                return  # another request refreshed the token while this one waited
            token = await self.tokens.fetch()
            self._api.add_secret(token.access_token)
            self._api.headers["Authorization"] = f"Bearer {token.access_token}"
            self._generation += 1
            self.refreshes += 1

    # --- batching -------------------------------------------------------------------------------

    def batch_key(self, spec: SalesforceQuery) -> str:
        """Same SOQL template (or same report): one request answers them all."""
        if spec.report_id is not None:
            return f"report:{spec.report_id}"
        paged = "count" if spec.mode == "count" else "records"
        return f"soql:{paged}:{spec.soql}"

    async def fetch(self, queries: Sequence[Query[SalesforceQuery]]) -> list[Reading]:
        groups: dict[tuple[str, str, str, str], list[Query[SalesforceQuery]]] = {}
        for query in queries:
            cycle = query.cycle
            key = (self.batch_key(query.spec), cycle.id, str(cycle.start), str(cycle.end))
            groups.setdefault(key, []).append(query)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(members: list[Query[SalesforceQuery]]) -> list[Reading]:
            async with limit:
                return await self._answer(members)

        answered = await asyncio.gather(*(one(members) for members in groups.values()))
        return [reading for readings in answered for reading in readings]

    async def fetch_one(self, query: Query[SalesforceQuery]) -> Reading:
        readings = await self._answer([query])
        reading = readings[0]
        if reading.error is not None:
            raise reading.error
        return reading

    def _failed(self, query: Query[SalesforceQuery], error: ConnectorError) -> Reading:
        own = copy.copy(error)  # one error per metric, each naming its own metric
        own.connection = self.name
        own.subject = query.subject
        own.args = (own.render(),)
        return failed_reading(query, own)

    async def _answer(self, members: list[Query[SalesforceQuery]]) -> list[Reading]:
        first = members[0]
        names = [name for query in members for name in query.metrics]
        subject = first.subject if len(members) == 1 else f"metrics {', '.join(names)}"
        spec = first.spec
        try:
            api = await self._client()
            if spec.report_id is not None:
                text = first.spec.query_text()
                pages, raw = await self._report(api, spec.report_id, subject)
            else:
                text = render(spec.soql or "", first.cycle)
                pages, raw = await self._query(api, text, subject, all_pages=spec.mode != "count")
        except ConnectorError as exc:
            return [self._failed(query, exc) for query in members]
        now = datetime.now(UTC)
        readings = []
        for index, query in enumerate(members):
            try:
                value = self._value(query.spec, pages)
            except ConnectorError as exc:
                readings.append(self._failed(query, exc))
                continue
            shown = query.spec.query_text() if query.spec.report_id is not None else text
            if query.spec.group_value is not None:
                shown = f"{text} [group {query.spec.effective_group_field()} = "
                shown += f"{query.spec.group_value}]"
            readings.append(
                Reading(
                    key=query.key,
                    value=value,
                    query_text=shown,
                    fetched_at=now,
                    raw_digest=digest(raw),
                    api_calls=len(pages) if index == 0 else 0,
                )
            )
        return readings

    # --- requests -------------------------------------------------------------------------------

    def _data_path(self, rest: str) -> str:
        return f"/services/data/v{self.config.api_version}/{rest}"

    async def _report(
        self, api: HttpClient, report_id: str, subject: str
    ) -> tuple[list[dict[str, Any]], bytes]:
        response = await api.request(
            "GET", self._data_path(f"analytics/reports/{report_id}"), subject=subject
        )
        body = api.parse_json(response, subject=subject)
        if not isinstance(body, dict) or not isinstance(body.get("factMap"), dict):
            raise VendorResponseError("the report answer has no factMap", subject=subject)
        return [body], response.content

    async def _query(
        self, api: HttpClient, soql: str, subject: str, *, all_pages: bool
    ) -> tuple[list[dict[str, Any]], bytes]:
        headers = None
        if self.config.query_batch_size is not None:
            headers = {"Sforce-Query-Options": f"batchSize={self.config.query_batch_size}"}
        raw: list[bytes] = []

        async def page(next_url: str | None) -> dict[str, Any]:
            if next_url is None:
                params = {"q": soql}
                response = await api.request(
                    "GET", self._data_path("query"), params=params, headers=headers, subject=subject
                )
            else:
                response = await api.request("GET", next_url, headers=headers, subject=subject)
            raw.append(response.content)
            return self._page(api, response, subject)

        def next_records(body: dict[str, Any], response: httpx.Response | None) -> object:
            if body["done"] or not all_pages:
                return None
            found = body.get("nextRecordsUrl")
            if not isinstance(found, str):
                raise VendorResponseError(
                    f"the answer says more records follow but gives no nextRecordsUrl ({found!r})",
                    subject=subject,
                )
            return found

        records = NextUrlPaginator(
            next_records,
            allowed=lambda url: url.startswith("/services/data/"),
            what="records",
            max_pages=self.config.max_pages,
            subject=subject,
        )
        pages = await read_pages(records, page)
        return pages, b"\n".join(raw)

    @staticmethod
    def _page(api: HttpClient, response: httpx.Response, subject: str) -> dict[str, Any]:
        body = api.parse_json(response, subject=subject)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("records"), list)
            or not isinstance(body.get("totalSize"), int)
            or not isinstance(body.get("done"), bool)
        ):
            raise VendorResponseError(
                "the query answer lacks totalSize, done or records", subject=subject
            )
        return body

    # --- values ---------------------------------------------------------------------------------

    def _value(self, spec: SalesforceQuery, pages: list[dict[str, Any]]) -> Decimal:
        mode = spec.mode
        if mode == "report":
            return self._report_value(spec, pages[0])
        if mode == "count":
            return Decimal(pages[0]["totalSize"])
        records: list[dict[str, Any]] = [r for page in pages for r in page["records"]]
        field = spec.value_field or "expr0"
        if mode == "sum":
            total = Decimal(0)
            for record in records:
                found, value = _field(record, field)
                if not found:
                    raise self._missing(field, record)
                if value is not None:
                    total += self._number(value, field)
            return total
        return self._row_value(spec, records, field)

    def _row_value(self, spec: SalesforceQuery, rows: list[dict[str, Any]], field: str) -> Decimal:
        if spec.group_value is not None:
            group_field = spec.effective_group_field() or ""
            rows = [r for r in rows if _same(_field(r, group_field)[1], spec.group_value)]
        if not rows:
            return Decimal(0)  # no records in the (group of the) answer: COUNT and SUM are 0
        if len(rows) > 1:
            hint = "set group_value to pick one group" if spec.group_value is None else ""
            raise QueryError(f"the query answered {len(rows)} rows where one was expected; {hint}")
        found, value = _field(rows[0], field)
        if not found:
            raise self._missing(field, rows[0])
        if value is None:
            function = aggregate_columns(spec.soql or "").get(field)
            if function in _NO_VALUE_WHEN_EMPTY:
                raise QueryError(f"{function} over no records has no value ({field} is null)")
            return Decimal(0)
        return self._number(value, field)

    @staticmethod
    def _report_value(spec: SalesforceQuery, body: dict[str, Any]) -> Decimal:
        fact = body["factMap"].get(spec.fact_map_key)
        aggregates = fact.get("aggregates") if isinstance(fact, dict) else None
        if not isinstance(aggregates, list):
            keys = ", ".join(sorted(body["factMap"])[:10])
            raise QueryError(f"the report has no fact map key {spec.fact_map_key!r} ({keys})")
        if spec.aggregate_index >= len(aggregates):
            raise QueryError(
                f"the report has {len(aggregates)} aggregates; aggregate_index "
                f"{spec.aggregate_index} is out of range"
            )
        item = aggregates[spec.aggregate_index]
        value = item.get("value") if isinstance(item, dict) else None
        if value is None:
            raise QueryError("the report aggregate has no value")
        return SalesforceSource._number(value, "value")

    @staticmethod
    def _number(value: object, field: str) -> Decimal:
        try:
            return as_decimal(value)
        except (TypeError, ArithmeticError, ValueError):
            raise VendorResponseError(f"{field} is not a number: {str(value)[:60]!r}") from None

    @staticmethod
    def _missing(field: str, record: dict[str, Any]) -> QueryError:
        fields = ", ".join(k for k in record if k != "attributes") or "none"
        return QueryError(f"value_field {field!r} is not in the answer (fields: {fields})")
