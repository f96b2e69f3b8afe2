"""The HTTP side of a Jira connection: error table, rate-limit signals, pace, per-issue spacing.

The connector declares its client through the SDK's :class:`~okrsync.sdk.http_connector.HttpSource`
hooks (auth, this error table, ``BURST``, :class:`AdaptivePace` on its budget).

Jira Cloud answers 429 with ``Retry-After`` (seconds) and says which limit was hit in
``RateLimit-Reason`` (``jira-burst-based``, ``jira-quota-tenant-based``,
``jira-per-issue-on-write``…); ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` (an ISO-8601
time) are read by the SDK's call budget. API-token traffic is governed by Jira Cloud's burst
limits, documented as 100 requests a second per site, endpoint and method for GET and POST (50
for PUT and DELETE): the default ceiling of the pace, ``requests_per_second``, is that 100, and
``max_concurrency`` (10) is enough in flight to reach it while answers take up to 100 ms. Below
the ceiling the pace is steered by what Jira says (:class:`AdaptivePace`): a Cloud site's
``X-RateLimit-Limit`` (its per-second limit) caps it, ``X-RateLimit-NearLimit: true`` (under
20% of a budget left) or a ``RateLimit-Reason`` halves it, quiet answers win it back, and a Data
Center that announces its bucket (``X-RateLimit-FillRate`` per ``-Interval-Seconds``) is
followed.
Writes to one issue are spaced by ``issue_write_interval`` (default 0.5 s, so one push — field,
comment, property — spends about a second on an issue), because Jira also limits writes per
issue and a burst of edits there is the easiest way to earn a ``jira-per-issue-on-write`` 429.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
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
from okrsync.sdk.budget import CallBudget
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
    HttpClient,
    describe_response,
)

BURST = 5  # requests that may leave back to back after a quiet spell
BACK_OFF = 0.5  # the pace is multiplied by this when Jira signals pressure
CUT_COOLDOWN = 1.0  # seconds: the answers already in flight when Jira warns count as one warning
RECOVERY_ANSWERS = 20  # quiet answers that win back the whole ceiling from nothing
MIN_PACE = 1.0  # requests per second: pressure never slows the connection below this
PER_ISSUE_REASON = "jira-per-issue-on-write"  # one issue's limit: the spacer's job, not the pace's


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


def under_pressure(headers: httpx.Headers) -> bool:
    """Jira says a site-wide budget is nearly spent, or names the limit it just enforced."""
    if headers.get("x-ratelimit-nearlimit", "").strip().lower() == "true":
        return True
    reason = headers.get("ratelimit-reason", "").strip().lower()
    return bool(reason) and reason != PER_ISSUE_REASON


def announced_limit(headers: httpx.Headers) -> float | None:
    """Jira Cloud's ``X-RateLimit-Limit``: the burst limit of the endpoint, per second."""
    try:
        limit = float(headers["x-ratelimit-limit"])
    except (KeyError, ValueError):
        return None
    return limit if math.isfinite(limit) and limit > 0 else None


def announced_rate(headers: httpx.Headers) -> float | None:
    """Data Center's bucket, when an admin turned rate limiting on: tokens per second."""
    try:
        fill = float(headers["x-ratelimit-fillrate"])
        interval = float(headers["x-ratelimit-interval-seconds"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(fill) and math.isfinite(interval)) or fill <= 0 or interval <= 0:
        return None
    return fill / interval


class AdaptivePace:
    """The connection's pace, steered by Jira's own signals below a configured ceiling.

    Additive increase, multiplicative decrease: a pressure signal halves the pace (at most once
    per :data:`CUT_COOLDOWN`, not below :data:`MIN_PACE`), every quiet answer adds a
    :data:`RECOVERY_ANSWERS`-th of the ceiling back. A lower rate announced by the site becomes
    the ceiling (Cloud: ``X-RateLimit-Limit`` per second, when ``cloud``; Data Center: its fill
    rate), and the pace drops to it at once. Registered as a header observer of the budget, so
    it sees every answer of every client sharing that budget; it never holds the connection
    itself (``Retry-After`` and ``X-RateLimit-Reset`` do that).
    """

    def __init__(
        self,
        budget: CallBudget,
        ceiling: float,
        *,
        cloud: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.cloud = cloud
        self.configured = ceiling
        self.ceiling = ceiling  # the configured one, or lower when Data Center announces less
        self._clock = clock
        self._last_cut = -math.inf

    def observe(self, headers: httpx.Headers) -> float | None:
        rate = self.budget.rate
        if rate is None:
            return None
        announced = announced_limit(headers) if self.cloud else announced_rate(headers)
        if announced is not None:
            self.ceiling = min(self.configured, announced)
        if under_pressure(headers):
            now = self._clock()
            if now - self._last_cut >= CUT_COOLDOWN:
                self._last_cut = now
                rate = max(min(MIN_PACE, self.ceiling), rate * BACK_OFF)
        else:
            rate += self.ceiling / RECOVERY_ANSWERS
        rate = min(rate, self.ceiling)
        if rate != self.budget.rate:
            self.budget.set_rate(rate)
        return None


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
