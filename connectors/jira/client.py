"""The HTTP side of a Jira connection: auth, error table, rate-limit signals, per-issue spacing.

Jira Cloud answers 429 with ``Retry-After`` (seconds) and says which limit was hit in
``RateLimit-Reason`` (``jira-burst-based``, ``jira-quota-tenant-based``,
``jira-per-issue-on-write``…); ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` (an ISO-8601
time) are read by the SDK's call budget, and ``X-RateLimit-NearLimit: true`` (under 20% of the
budget left) makes us pause briefly before the next call instead of running into the wall.
Writes to one issue are spaced by ``issue_write_interval`` (default 0.5 s, so one push — field,
comment, property — spends about a second on an issue), because Jira also limits writes per
issue and a burst of edits there is the easiest way to earn a ``jira-per-issue-on-write`` 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

import httpx

from connectors.jira.models import JiraConnection
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
)
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
    HttpClient,
    RetryPolicy,
    describe_response,
)

NEAR_LIMIT_PAUSE = 1.0  # seconds to hold the connection when Jira says the budget is nearly spent


def error_table(config: JiraConnection) -> Mapping[int, ErrorRule]:
    if config.deployment == "cloud":
        check = "check email and api_token (an Atlassian API token, sent as Basic auth)"
    else:
        check = "check personal_access_token (sent as a Bearer token)"
    return MappingProxyType(
        {
            **DEFAULT_ERROR_TABLE,
            # Nothing to refresh: a 401 means the credentials themselves are wrong or revoked.
            401: ErrorRule(
                ErrorAction.FAIL, CredentialsError, f"Jira rejected the credentials: {check}"
            ),
            403: ErrorRule(
                ErrorAction.FAIL,
                CredentialsError,
                "Jira refused the request: the account lacks the permission for it "
                "(Browse projects to search; Edit issues / Add comments to mirror)",
            ),
            400: ErrorRule(ErrorAction.FAIL, QueryError, "Jira rejected the request"),
            404: ErrorRule(ErrorAction.FAIL, TargetNotFoundError, "not found in Jira"),
            409: ErrorRule(ErrorAction.RETRY, RetriableError, "Jira reported a conflicting update"),
            410: ErrorRule(ErrorAction.FAIL, ConnectorError, "this Jira API has been removed"),
            413: ErrorRule(
                ErrorAction.FAIL, ConnectorError, "the issue has reached a Jira limit (comments)"
            ),
            429: ErrorRule(ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by Jira"),
        }
    )


def describe_error(response: httpx.Response) -> str | None:
    """Jira's own words, plus which rate limit was hit when it says so."""
    detail = describe_response(response)
    reason = response.headers.get("ratelimit-reason")
    if response.status_code == 429 or reason:
        limit = f"RateLimit-Reason: {reason}" if reason else "no RateLimit-Reason"
        return f"{detail} [{limit}]" if detail else f"[{limit}]"
    return detail


def near_limit(headers: httpx.Headers) -> float | None:
    if headers.get("x-ratelimit-nearlimit", "").strip().lower() == "true":
        return NEAR_LIMIT_PAUSE
    return None


def make_client(
    name: str, config: JiraConnection, retry: RetryPolicy, budget: CallBudget | None = None
) -> HttpClient:
    """The connection's client; pass ``budget`` to make a second client share the same pace."""
    headers = {"Accept": "application/json"}
    auth: httpx.Auth | None = None
    if config.deployment == "cloud":
        assert config.email is not None and config.api_token is not None  # the model checks
        auth = httpx.BasicAuth(config.email, config.api_token.get_secret_value())
    else:
        assert config.personal_access_token is not None
        headers["Authorization"] = f"Bearer {config.personal_access_token.get_secret_value()}"
    budget = budget or CallBudget(
        BudgetPolicy(
            max_concurrency=4,
            requests_per_second=config.requests_per_second,
            burst=5,
        ),
        extra_observers=[near_limit],
    )
    return HttpClient(
        connection=name,
        base_url=config.url,
        headers=headers,
        auth=auth,
        timeout=config.timeout,
        budget=budget,
        retry=retry,
        error_table=error_table(config),
        describe_error=describe_error,
        secrets=config.secret_values(),
    )


class IssueWriteSpacer:
    """At most one write at a time per issue, and at least ``interval`` seconds between them."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, issue: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(issue, asyncio.Lock())
        async with lock:
            last = self._last.get(issue)
            if last is not None:
                wait = last + self.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[issue] = time.monotonic()


class FieldCatalog:
    """``GET /rest/api/{v}/field``, loaded once per connection and shared by every metric."""

    def __init__(self, client: HttpClient, api: str) -> None:
        self._client = client
        self._api = api
        self._fields: list[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def all(self, subject: str | None) -> list[dict[str, Any]]:
        async with self._lock:
            if self._fields is None:
                body = await self._client.get_json(f"{self._api}/field", subject=subject)
                if not isinstance(body, list):
                    raise ConnectorError(
                        "Jira's field list is not a JSON array", subject=subject
                    ).for_subject(self._client.connection, subject)
                self._fields = [item for item in body if isinstance(item, dict)]
            return self._fields

    async def resolve(
        self, wanted: str, subject: str | None, missing: type[ConnectorError]
    ) -> dict[str, Any]:
        """The field whose id, or else whose name (case-insensitive), is ``wanted``."""
        fields = await self.all(subject)
        by_id = [f for f in fields if f.get("id") == wanted or f.get("key") == wanted]
        if by_id:
            return by_id[0]
        lowered = wanted.strip().lower()
        named = [
            f
            for f in fields
            if str(f.get("name", "")).lower() == lowered
            or str(f.get("untranslatedName", "")).lower() == lowered
        ]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            ids = ", ".join(str(f.get("id")) for f in named)
            raise missing(
                f"several Jira fields are named {wanted!r} ({ids}); use the field id instead",
                subject=subject,
            ).for_subject(self._client.connection, subject)
        near = [
            str(f.get("name"))
            for f in fields
            if lowered.split(" ")[0] and lowered.split(" ")[0] in str(f.get("name", "")).lower()
        ][:5]
        hint = f"; fields with similar names: {', '.join(near)}" if near else ""
        raise missing(
            f"Jira has no field with the id or name {wanted!r}{hint}", subject=subject
        ).for_subject(self._client.connection, subject)
