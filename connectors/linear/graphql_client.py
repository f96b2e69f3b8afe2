"""One Linear connection's GraphQL transport: requests, Linear's error shapes, its rate limits.

Linear answers every problem as a GraphQL ``errors`` list, whatever the HTTP status: 200 for an
entity that does not exist, 400 for a rate limit (``extensions.code: RATELIMITED``, with
``statusCode: 429`` inside the body, as observed in real traffic) and for a rejected key. So the
verdict comes from ``extensions.code`` through HttpClient's ``classify`` hook, and the status
table only decides when the body is not Linear's (a proxy's 502, an HTML page).

Rate limits are two leaky buckets, requests and complexity points; each answer says what is left
in ``X-RateLimit-Requests-Remaining``/``-Reset`` and ``X-RateLimit-Complexity-Remaining``/
``-Reset`` (resets in epoch milliseconds). :func:`linear_rate_observer` holds the connection's
budget until the reset when either bucket is empty, so we wait before Linear has to say no.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from connectors.linear.models import LinearConnection
from okrsync.errors import (
    CredentialsError,
    QueryError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.connector import ConnectorBase
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, HttpClient, RetryPolicy
from okrsync.sdk.paging import CursorPaginator

ENDPOINT = "/graphql"

RATE_LIMITED = ErrorRule(ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by Linear")
AUTHENTICATION = ErrorRule(
    ErrorAction.FAIL, CredentialsError, "Linear rejected the connection's credentials"
)
FORBIDDEN = ErrorRule(ErrorAction.FAIL, CredentialsError, "the credentials may not do this")
NOT_FOUND = ErrorRule(ErrorAction.FAIL, TargetNotFoundError, "not found in Linear")
INVALID = ErrorRule(ErrorAction.FAIL, QueryError, "Linear rejected the request")
INVALID_QUERY = ErrorRule(ErrorAction.FAIL, QueryError, "Linear rejected the GraphQL document")
TRANSIENT = ErrorRule(ErrorAction.RETRY, RetriableError, "Linear failed to answer")
UNKNOWN = ErrorRule(ErrorAction.FAIL, VendorResponseError, "Linear answered with an error")

_BY_CODE: Mapping[str, ErrorRule] = MappingProxyType(
    {
        "RATELIMITED": RATE_LIMITED,
        "AUTHENTICATION_ERROR": AUTHENTICATION,
        "FORBIDDEN": FORBIDDEN,
        "FEATURE_NOT_ACCESSIBLE": FORBIDDEN,
        "INVALID_INPUT": INVALID,
        "BAD_USER_INPUT": INVALID,
        "GRAPHQL_PARSE_FAILED": INVALID_QUERY,
        "GRAPHQL_VALIDATION_FAILED": INVALID_QUERY,
        "INTERNAL_SERVER_ERROR": TRANSIENT,
        "INTERNAL_ERROR": TRANSIENT,
        "LOCK_TIMEOUT": TRANSIENT,
    }
)
# extensions.type, for errors that carry no code we know
_BY_TYPE: Mapping[str, ErrorRule] = MappingProxyType(
    {
        "ratelimited": RATE_LIMITED,
        "authentication error": AUTHENTICATION,
        "forbidden": FORBIDDEN,
        "invalid input": INVALID,
        "graphql error": INVALID_QUERY,
        "internal error": TRANSIENT,
        "lock timeout": TRANSIENT,
    }
)

LINEAR_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        **DEFAULT_ERROR_TABLE,
        401: AUTHENTICATION,
        403: ErrorRule(ErrorAction.FAIL, CredentialsError, "Linear denied access"),
    }
)


def _first_error(response: httpx.Response) -> dict[str, Any] | None:
    """The first entry of a GraphQL ``errors`` list, or ``None`` (raises ValueError on non-JSON)."""
    if "json" not in response.headers.get("content-type", "json").lower():
        return None
    body = json.loads(response.content)
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    return errors[0]


def _extensions(error: Mapping[str, Any]) -> dict[str, Any]:
    extensions = error.get("extensions")
    return extensions if isinstance(extensions, dict) else {}


def classify(response: httpx.Response) -> ErrorRule | None:
    """The rule for a GraphQL error body, whatever its HTTP status; ``None`` when there is none."""
    error = _first_error(response)
    if error is None:
        return None
    extensions = _extensions(error)
    code = str(extensions.get("code") or "").upper()
    kind = str(extensions.get("type") or "").lower()
    message = str(error.get("message") or "")
    if message.startswith("Entity not found") or "not found" in kind:
        return NOT_FOUND
    rule = _BY_CODE.get(code) or _BY_TYPE.get(kind)
    if rule is not None:
        return rule
    if response.status_code >= 500:
        return TRANSIENT
    return UNKNOWN


def describe_error(response: httpx.Response) -> str | None:
    """``CODE: message (what Linear tells users)`` from a GraphQL error body."""
    try:
        error = _first_error(response)
    except ValueError:
        return None
    if error is None:
        return None
    extensions = _extensions(error)
    code = extensions.get("code")
    message = str(error.get("message") or "").strip()
    text = f"{code}: {message}" if isinstance(code, str) and code else message
    friendly = extensions.get("userPresentableMessage")
    if isinstance(friendly, str) and friendly.strip() and friendly.strip() != message:
        text = f"{text} ({friendly.strip()})"
    return text


def linear_rate_observer(
    wall_clock: Callable[[], float] = time.time, margin: float = 0.0
) -> Callable[[httpx.Headers], float | None]:
    """Seconds to hold when the request or the complexity bucket says it is empty."""

    def observe(headers: httpx.Headers) -> float | None:
        holds: list[float] = []
        for bucket in ("requests", "complexity"):
            remaining = _number(headers.get(f"x-ratelimit-{bucket}-remaining"))
            reset = _number(headers.get(f"x-ratelimit-{bucket}-reset"))
            if remaining is None or remaining > 0 or reset is None:
                continue
            # epoch milliseconds; tolerate seconds too (a value below ~2001 in ms is not a date)
            seconds = reset / 1000.0 if reset > 1e11 else reset
            holds.append(max(0.0, seconds - wall_clock()) + margin)
        return max(holds) if holds else None

    return observe


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Timing:
    """Backoffs and waits; tests make them short."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    rate_limit_backoff: float = 1.0
    reset_margin: float = 0.5  # past a bucket's reset, for clock skew
    max_wait: float = 300.0  # a longer hold pauses the connection instead


@dataclass(frozen=True)
class GraphQLAnswer:
    """The ``data`` of one answer, and its raw bytes (provenance digests are taken over them)."""

    data: dict[str, Any]
    raw: bytes


class LinearGraphQL:
    """Two HTTP clients sharing one budget: ``client`` retries, ``once`` (for creates) does not."""

    def __init__(self, name: str, config: LinearConnection, timing: Timing) -> None:
        self.name = name
        budget = CallBudget(
            BudgetPolicy(
                max_concurrency=config.max_concurrency,
                requests_per_second=config.requests_per_second,
                max_wait=timing.max_wait,
            ),
            extra_observers=[linear_rate_observer(margin=timing.reset_margin)],
        )
        retry = RetryPolicy(
            max_attempts=config.max_retries + 1,
            initial_backoff=timing.initial_backoff,
            max_backoff=timing.max_backoff,
            rate_limit_backoff=timing.rate_limit_backoff,
        )
        once = RetryPolicy(max_attempts=1, max_retry_after=retry.max_retry_after)
        self.client = self._client(config, budget, retry)
        # A create whose answer was lost may have happened: the sink looks before it retries.
        self.once = self._client(config, budget, once)

    def _client(
        self, config: LinearConnection, budget: CallBudget, retry: RetryPolicy
    ) -> HttpClient:
        return HttpClient(
            connection=self.name,
            base_url=config.base_url,
            headers={
                "Authorization": config.authorization(),
                "Content-Type": "application/json",
            },
            timeout=config.timeout,
            budget=budget,
            retry=retry,
            error_table=LINEAR_ERROR_TABLE,
            classify=classify,
            describe_error=describe_error,
            secrets=config.secret_values(),
        )

    @property
    def calls(self) -> int:
        return self.client.calls + self.once.calls

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.once.aclose()

    async def execute(
        self,
        document: str,
        variables: Mapping[str, Any],
        *,
        subject: str | None,
        retry: bool = True,
    ) -> GraphQLAnswer:
        """Run one operation; its ``data`` or the typed error its ``errors`` mean."""
        http = self.client if retry else self.once
        response = await http.request(
            "POST",
            ENDPOINT,
            json={"query": document, "variables": dict(variables)},
            subject=subject,
        )
        body = http.parse_json(response, subject=subject)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise VendorResponseError(
                "Linear's answer has no 'data' object", connection=self.name, subject=subject
            )
        return GraphQLAnswer(data, response.content)


def expect(value: Any, kind: type, what: str, subject: str | None) -> Any:
    """``value`` when it has the expected JSON type, else a VendorResponseError naming ``what``."""
    if not isinstance(value, kind):
        raise VendorResponseError(
            f"Linear's answer has no {what} (got {type(value).__name__})", subject=subject
        )
    return value


def relay_pages(field: str, *, max_pages: int, subject: str | None) -> CursorPaginator:
    """Pages of the GraphQL connection ``field`` (``pageInfo { hasNextPage endCursor }``):
    advance it with each page's connection object."""

    def page_info(connection: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = expect(
            connection.get("pageInfo"), dict, f"{field}.pageInfo", subject
        )
        return info

    return CursorPaginator(
        lambda connection: page_info(connection).get("endCursor"),
        has_more=lambda connection: bool(page_info(connection).get("hasNextPage")),
        what=field,
        max_pages=max_pages,
        subject=subject,
    )


class LinearBase(ConnectorBase[LinearConnection]):
    """What the Linear source and sink share: one :class:`LinearGraphQL` per connection."""

    timing: ClassVar[Timing] = Timing()

    def __init__(self, name: str, config: LinearConnection) -> None:
        super().__init__(name, config)
        self.graphql = LinearGraphQL(name, config, self.timing)
        # Linear's buckets are the API key's: one for every replica of the daemon.
        self.graphql.client.budget.share(self.budgets.bucket("api"))

    @property
    def api_calls(self) -> int:
        return self.graphql.calls

    async def aclose(self) -> None:
        await self.graphql.aclose()


__all__ = [
    "GraphQLAnswer",
    "LinearBase",
    "LinearGraphQL",
    "Timing",
    "classify",
    "describe_error",
    "expect",
    "linear_rate_observer",
    "relay_pages",
]
