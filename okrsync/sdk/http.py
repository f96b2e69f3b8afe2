"""The one HTTP engine every HTTP connector uses: budget → retry → error table → typed errors.

A connector declares *what* its vendor means (a different error table row, a ``classify`` hook
for vendors that answer errors with HTTP 200, a ``describe_error`` hook for odd error bodies, a
token refresher) and this module does the rest the same way for all of them: it paces calls
through the connection's :class:`~okrsync.sdk.budget.CallBudget`, retries transient failures
with tenacity (honouring ``Retry-After`` in both forms), and turns whatever came back into one of
the exceptions of :mod:`okrsync.errors`, worded so a user knows which connection and which
metric to look at — and never showing a secret, because error messages end up in logs, the
store and the dashboard.
"""

from __future__ import annotations

import functools
import json
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, Self

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from okrsync.domain.backoff import JitterSource, capped_exponential
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    QueryError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.redaction import Redactor
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.retry_after import parse_retry_after

log = structlog.get_logger()

DETAIL_LIMIT = 200
SNIPPET_LIMIT = 120


class ErrorAction(StrEnum):
    """What the engine does with a response (Airbyte CDK's vocabulary)."""

    RETRY = "retry"
    FAIL = "fail"
    RATE_LIMITED = "rate_limited"
    REFRESH_CREDENTIALS = "refresh_credentials"
    IGNORE = "ignore"


@dataclass(frozen=True)
class ErrorRule:
    """One row of an error table: the action, the exception it raises and what it tells users.

    The action and the exception class must agree, because the retry loop retries exactly the
    :class:`RetriableError` family; a mismatched row is refused when it is written, not when a
    vendor first answers with that status.
    """

    action: ErrorAction
    error: type[ConnectorError]
    message: str

    def __post_init__(self) -> None:
        retriable = issubclass(self.error, RetriableError)
        if self.action is ErrorAction.RATE_LIMITED and not issubclass(self.error, RateLimitedError):
            raise ValueError("a RATE_LIMITED rule must raise a RateLimitedError")
        if self.action is ErrorAction.RETRY and not retriable:
            raise ValueError("a RETRY rule must raise a RetriableError")
        if self.action in (ErrorAction.FAIL, ErrorAction.REFRESH_CREDENTIALS) and retriable:
            raise ValueError(f"a {self.action.value.upper()} rule must not raise a RetriableError")


_REJECTED = ErrorRule(ErrorAction.FAIL, QueryError, "the vendor rejected the request")
_SERVER = ErrorRule(ErrorAction.RETRY, RetriableError, "the vendor failed to answer")

DEFAULT_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        400: _REJECTED,
        401: ErrorRule(
            ErrorAction.REFRESH_CREDENTIALS, CredentialsError, "credentials were rejected"
        ),
        403: ErrorRule(ErrorAction.FAIL, CredentialsError, "permission denied"),
        404: ErrorRule(ErrorAction.FAIL, TargetNotFoundError, "not found"),
        408: ErrorRule(ErrorAction.RETRY, RetriableError, "the vendor timed out the request"),
        409: ErrorRule(ErrorAction.RETRY, RetriableError, "the request conflicted with another"),
        422: _REJECTED,
        425: ErrorRule(ErrorAction.RETRY, RetriableError, "the vendor asked to retry later"),
        429: ErrorRule(ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by the vendor"),
        500: _SERVER,
        502: ErrorRule(ErrorAction.RETRY, RetriableError, "bad gateway in front of the vendor"),
        503: ErrorRule(ErrorAction.RETRY, RetriableError, "the vendor is unavailable"),
        504: ErrorRule(ErrorAction.RETRY, RetriableError, "the vendor's gateway timed out"),
    }
)
_OTHER_SERVER_ERROR = _SERVER
_OTHER_CLIENT_ERROR = ErrorRule(ErrorAction.FAIL, ConnectorError, "the request failed")


def rule_for_status(status: int, table: Mapping[int, ErrorRule]) -> ErrorRule | None:
    """The table's rule for ``status``, the 4xx/5xx fallbacks, or ``None`` for a success."""
    if status in table:
        return table[status]
    if status >= 500:
        return _OTHER_SERVER_ERROR
    if status >= 400:
        return _OTHER_CLIENT_ERROR
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently a request is retried.

    ``max_retry_after`` caps how long we honour a vendor's ``Retry-After``: beyond it the error is
    raised at once so the scheduler can pause the connection rather than block a worker.
    ``rate_limit_backoff`` is the least we wait after a rate limit that named no delay (HubSpot's
    search limit says "wait at least a second").
    """

    max_attempts: int = 4
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    rate_limit_backoff: float = 1.0
    jitter: JitterSource = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoff must satisfy 0 <= initial_backoff <= max_backoff")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, never below ``initial_backoff`` nor above the max.

        The jitter spreads the retries of many connections hitting one vendor outage, so they
        do not all come back in the same instant.
        """
        return capped_exponential(
            attempt - 1, self.initial_backoff, self.max_backoff, jitter=self.jitter
        )


class HourlyAllowance(Protocol):
    """The connection fields of an API paced to a query allowance per hour (analytics APIs)."""

    @property
    def queries_per_hour(self) -> float | None: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def max_wait(self) -> float: ...
    @property
    def max_retries(self) -> int: ...


class Backoffs(Protocol):
    """A connector's retry pauses (class attributes, so a test subclass can shorten them)."""

    @property
    def initial_backoff(self) -> float: ...
    @property
    def max_backoff(self) -> float: ...
    @property
    def rate_limit_backoff(self) -> float: ...


def hourly_allowance(
    config: HourlyAllowance, backoffs: Backoffs, *, burst: int
) -> tuple[CallBudget, RetryPolicy]:
    """The call budget and retry policy of a connection paced to ``queries_per_hour``.

    ``None`` for ``queries_per_hour`` leaves the connection unpaced (concurrency still applies);
    ``max_retries`` counts retries, so a request gets ``max_retries + 1`` attempts; a
    ``max_backoff`` below ``initial_backoff`` is raised to it.
    """
    hourly = config.queries_per_hour
    budget = CallBudget(
        BudgetPolicy(
            max_concurrency=config.max_concurrency,
            requests_per_second=hourly / 3600.0 if hourly is not None else None,
            burst=burst,
            max_wait=config.max_wait,
        )
    )
    retry = RetryPolicy(
        max_attempts=config.max_retries + 1,
        initial_backoff=backoffs.initial_backoff,
        max_backoff=max(backoffs.max_backoff, backoffs.initial_backoff),
        rate_limit_backoff=backoffs.rate_limit_backoff,
    )
    return budget, retry


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context shared by every client of the process.

    Building one loads the CA bundle, about 0.2 s of CPU: paid once, not by every connection's
    client (a Jira connection has two) on the first request of a run.
    """
    return httpx.create_ssl_context()


_WHITESPACE = re.compile(r"\s+")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")


def _shorten(text: str, limit: int) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strings(value: object) -> list[str]:
    """Readable messages inside a vendor's error field, whatever shape it took."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        if isinstance(value.get("message"), str):
            code = value.get("errorCode") or value.get("code")
            message = value["message"]
            return [f"{code}: {message}" if isinstance(code, str) and code else message]
        return [f"{key}: {text}" for key, item in value.items() for text in _strings(item)]
    return []


def _describe_json(body: object) -> list[str]:
    if isinstance(body, list):
        # Salesforce: [{"message": "...", "errorCode": "MALFORMED_QUERY", "fields": [...]}]
        return _strings(body[0]) if body else []
    if not isinstance(body, dict):
        return []
    parts: list[str] = []
    for key in ("message", "errorMessages", "errors", "error", "error_description", "detail"):
        if key in body:
            parts.extend(_strings(body[key]))
    if not parts and isinstance(body.get("title"), str):  # RFC 9457 problem details
        parts.append(body["title"])
    return list(dict.fromkeys(parts))  # drop repeats, keep order


def describe_response(response: httpx.Response) -> str:
    """What the vendor said went wrong, read from the usual shapes of error bodies.

    JSON bodies: ``message`` (GitHub, HubSpot), ``errorMessages`` + ``errors`` (Jira), ``error``
    as a string (Slack, Mixpanel) or an envelope (Google), ``detail`` (DRF), a list whose first
    item has ``message`` and ``errorCode`` (Salesforce). HTML pages give their title; anything
    else its text. Not shortened here: the caller must redact secrets *before* shortening, or a
    secret cut in half by the limit would escape redaction.
    """
    content_type = response.headers.get("content-type", "")
    text = response.text
    if not text.strip():
        return ""
    try:
        parts = _describe_json(json.loads(text))
    except ValueError:
        parts = []
    if parts:
        return "; ".join(parts)
    if "html" in content_type or text.lstrip().startswith("<"):
        title = _HTML_TITLE.search(text)
        text = title.group(1) if title else _HTML_TAG.sub(" ", text)
    return text


@dataclass
class _RequestState:
    """What one call of :meth:`HttpClient.request` remembers across its attempts."""

    refreshed: bool = False
    retry_after: float | None = None  # the wait the vendor asked for on the last attempt
    give_up: bool = False  # the vendor asked for a wait longer than we are willing to make
    status: int | None = None  # of the last attempt, for the retry log
    attempts: int = 0


@dataclass
class _Call:
    method: str
    url: str
    subject: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)


class HttpClient:
    """One ``httpx.AsyncClient`` for one connection, for the connection's whole life.

    ``calls`` counts HTTP requests actually sent (retries included), ``retries`` the extra
    attempts, ``rate_limited`` the rate-limit answers; runs report them as the API calls spent.
    """

    def __init__(
        self,
        *,
        connection: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        budget: CallBudget | None = None,
        retry: RetryPolicy = RetryPolicy(),  # frozen, so sharing the default is safe
        error_table: Mapping[int, ErrorRule] = DEFAULT_ERROR_TABLE,
        classify: Callable[[httpx.Response], ErrorRule | None] | None = None,
        refresh_credentials: Callable[[], Awaitable[None]] | None = None,
        describe_error: Callable[[httpx.Response], str | None] | None = None,
        secrets: Sequence[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.connection = connection
        self.timeout = timeout
        self.budget = budget if budget is not None else CallBudget()
        self.retry = retry
        self.error_table = error_table
        self._classify = classify
        self._refresh_credentials = refresh_credentials
        self._describe_error = describe_error
        self._redactor = Redactor(secrets)
        default_headers = {"User-Agent": "okrsync"}
        default_headers.update(headers or {})
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=default_headers,
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            verify=default_ssl_context() if transport is None else True,
        )
        self.calls = 0
        self.retries = 0
        self.rate_limited = 0

    @property
    def headers(self) -> httpx.Headers:
        """The headers sent with every request; a token refresher may replace Authorization."""
        return self._client.headers

    def add_secret(self, secret: str) -> None:
        """Redact ``secret`` from every later error (a refreshed token is a new secret)."""
        self._redactor.add([secret])

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    # --- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- requests -------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
    ) -> httpx.Response:
        """Send one logical request (retried as needed); return the response or raise.

        Raises the :mod:`okrsync.errors` exception its error rule names, with ``connection``,
        ``subject`` and ``status_code`` set; :class:`QuotaExhaustedError` when the call budget
        would make it wait too long.
        """
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if json is not None:
            kwargs["json"] = json
        if content is not None:
            kwargs["content"] = content
        if data is not None:
            kwargs["data"] = data
        call = _Call(method.upper(), url, subject, kwargs)
        state = _RequestState()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=lambda retry_state: self._wait(retry_state, state),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, RetriableError) and not state.give_up
            ),
            before_sleep=lambda retry_state: self._before_sleep(retry_state, state),
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(self._attempt, call, state)
        except RetriableError as exc:
            if state.attempts > 1:
                exc.message = f"{exc.message} (gave up after {state.attempts} attempts)"
            raise exc.for_subject(self.connection, subject) from None
        except ConnectorError as exc:
            raise exc.for_subject(self.connection, subject) from None
        return response

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
    ) -> Any:
        """GET ``url`` and return its JSON body."""
        return await self.request_json("GET", url, params=params, headers=headers, subject=subject)

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
    ) -> Any:
        """Like :meth:`request`, returning the parsed JSON body (``None`` for 204/205).

        A body that is not JSON — an HTML error page from a proxy, a truncated document, an
        empty 200 — raises :class:`VendorResponseError` naming the content type and showing a
        short, redacted snippet, because "Expecting value: line 1 column 1" helps nobody.
        """
        response = await self.request(
            method,
            url,
            params=params,
            json=json,
            content=content,
            data=data,
            headers=headers,
            subject=subject,
        )
        return self.parse_json(response, subject=subject)

    def parse_json(self, response: httpx.Response, *, subject: str | None = None) -> Any:
        """The JSON body of ``response``, or a :class:`VendorResponseError` saying why not."""
        if response.status_code in (204, 205):
            return None
        content_type = response.headers.get("content-type", "(none)")
        body = response.content
        problem: str | None = None
        if not body.strip():
            problem = "the vendor sent an empty body where JSON was expected"
        elif "html" in content_type.lower():
            problem = "the vendor sent an HTML page where JSON was expected"
        else:
            try:
                return json.loads(body)
            except ValueError:  # includes UnicodeDecodeError
                problem = "the vendor sent a body that is not valid JSON"
        snippet = _shorten(self.redact(body.decode("utf-8", errors="replace")), SNIPPET_LIMIT)
        detail = f"HTTP {response.status_code}, {content_type}, {len(body)} bytes"
        if snippet:
            detail = f"{detail}: {snippet!r}"
        raise VendorResponseError(
            f"{problem} ({detail})",
            connection=self.connection,
            subject=subject,
            status_code=response.status_code,
        )

    # --- one attempt ----------------------------------------------------------------------------

    async def _attempt(self, call: _Call, state: _RequestState) -> httpx.Response:
        state.attempts += 1
        state.retry_after = None
        state.status = None
        while True:
            response = await self._send(call)
            state.status = response.status_code
            rule = self._classify_response(response)
            if rule is None:
                rule = rule_for_status(response.status_code, self.error_table)
            if rule is None or rule.action is ErrorAction.IGNORE:
                return response
            if (
                rule.action is ErrorAction.REFRESH_CREDENTIALS
                and self._refresh_credentials is not None
                and not state.refreshed
            ):
                # One refresh per logical request, then straight back: an expired token is not
                # a reason to wait, and a second 401 means the credentials really are wrong.
                state.refreshed = True
                await self._refresh_credentials()
                self.retries += 1
                log.info("http_credentials_refreshed", connection=self.connection)
                continue
            raise self._error_for(rule, response, call, state)

    def _classify_response(self, response: httpx.Response) -> ErrorRule | None:
        """The connector's verdict on ``response``, if it has one.

        A hook that reads the body as JSON (Slack's ``ok`` flag) fails on an HTML page from a
        proxy; that is not the hook's verdict, so the status table decides and, on a success
        status, :meth:`parse_json` reports the unreadable body properly.
        """
        if self._classify is None:
            return None
        try:
            return self._classify(response)
        except ValueError:
            return None

    async def _send(self, call: _Call) -> httpx.Response:
        async with self.budget.slot():
            self.calls += 1
            try:
                response = await self._client.request(call.method, call.url, **call.kwargs)
            except httpx.TimeoutException:
                raise RetriableError(
                    f"timed out after {self.timeout:g}s", subject=call.subject
                ) from None
            except httpx.TransportError as exc:
                detail = _shorten(self.redact(str(exc) or type(exc).__name__), DETAIL_LIMIT)
                raise RetriableError(f"connection failed: {detail}", subject=call.subject) from None
            except httpx.DecodingError as exc:
                detail = _shorten(self.redact(str(exc)), DETAIL_LIMIT)
                raise VendorResponseError(
                    f"the response could not be decoded: {detail}", subject=call.subject
                ) from None
            except httpx.RequestError as exc:
                detail = _shorten(self.redact(str(exc) or type(exc).__name__), DETAIL_LIMIT)
                raise ConnectorError(
                    f"the request could not be sent: {detail}", subject=call.subject
                ) from None
            self.budget.observe(response.headers)
        return response

    def _error_for(
        self, rule: ErrorRule, response: httpx.Response, call: _Call, state: _RequestState
    ) -> ConnectorError:
        status = response.status_code
        detail = None
        if self._describe_error is not None:
            detail = self._describe_error(response)
        if detail is None:
            detail = describe_response(response)
        detail = _shorten(self.redact(detail), DETAIL_LIMIT)
        message = f"{rule.message} (HTTP {status}: {detail})" if detail else f"{rule.message}"
        message = self.redact(message if detail else f"{message} (HTTP {status})")
        common: dict[str, Any] = {"subject": call.subject, "status_code": status}

        if rule.action in (ErrorAction.RATE_LIMITED, ErrorAction.RETRY):
            retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            if retry_after is not None:
                self.budget.hold_until(retry_after)
                state.retry_after = retry_after
                if retry_after > self.retry.max_retry_after:
                    state.give_up = True
                    message = (
                        f"{message}; the vendor asked to wait {retry_after:.0f}s, more than "
                        f"the {self.retry.max_retry_after:.0f}s we wait in place"
                    )
            if rule.action is ErrorAction.RATE_LIMITED:
                self.rate_limited += 1
                log.warning(
                    "http_rate_limited",
                    connection=self.connection,
                    status=status,
                    attempt=state.attempts,
                    wait=retry_after,
                )
            if issubclass(rule.error, RateLimitedError):
                return rule.error(message, retry_after=retry_after, **common)
        return rule.error(message, **common)

    # --- tenacity hooks ------------------------------------------------------------------------

    def _wait(self, retry_state: RetryCallState, state: _RequestState) -> float:
        if state.retry_after is not None:
            return state.retry_after
        wait = self.retry.backoff(retry_state.attempt_number)
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), RateLimitedError):
            wait = max(wait, self.retry.rate_limit_backoff)
        return wait

    def _before_sleep(self, retry_state: RetryCallState, state: _RequestState) -> None:
        self.retries += 1
        wait = retry_state.next_action.sleep if retry_state.next_action is not None else None
        log.info(
            "http_retry",
            connection=self.connection,
            status=state.status,
            attempt=retry_state.attempt_number,
            wait=wait,
        )


class OwnsHttpClient:
    """For connectors holding one :class:`HttpClient` as ``_client``: report its calls and close
    it with the connection. List it before ``Source``/``Sink`` among the bases."""

    _client: HttpClient

    @property
    def api_calls(self) -> int:
        return self._client.calls

    async def aclose(self) -> None:
        await self._client.aclose()
