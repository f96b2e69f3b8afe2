"""``HttpSource`` and ``HttpSink``: an HTTP connector declares its client once, as attributes.

Most connectors talk to one HTTP API with one client for the connection's life: a base URL,
credentials, a timeout, retries, how many requests may be in flight, a pace, and what each error
status means. Declared here once, in the way singer-sdk's REST streams declare theirs::

    class ThingsSource(HttpSource[ThingsConnection, ThingsQuery]):
        query_model = ThingsQuery
        error_table = {**DEFAULT_ERROR_TABLE, 401: ErrorRule(ErrorAction.FAIL, CredentialsError,
                                                             "Things rejected the token")}

        def auth_headers(self) -> dict[str, str]:
            return {"Authorization": f"Bearer {self.config.token.get_secret_value()}"}

        async def fetch_one(self, query: Query[ThingsQuery]) -> Reading:
            body = await self.client.get_json("/things/count", params=...)
            ...

The connection model supplies what the user may tune (``base_url`` or ``url``, ``timeout``,
``max_retries``, ``max_concurrency``, ``requests_per_second`` or ``queries_per_hour``, ``burst``,
``max_wait``); a field the model lacks takes the class default. The client's call budget is the
connection's shared ``api`` bucket, so replicas on one store share the vendor's allowance.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic

import httpx

from okrsync.errors import ConnectorError
from okrsync.sdk.budget import BudgetPolicy, CallBudget, HeaderObserver
from okrsync.sdk.connector import ConnectionT, MirrorT, QueryT, Sink, Source
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorRule, HttpClient, RetryPolicy
from okrsync.sdk.ledger import ConnectionBudgets
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult


def _field(config: object, name: str, default: Any) -> Any:
    """A connection field, or ``default`` when the connection model has no such field."""
    value = getattr(config, name, None)
    return default if value is None else value


class HttpConnection(Generic[ConnectionT]):
    """The declarations and the client shared by :class:`HttpSource` and :class:`HttpSink`.

    Class attributes are the defaults a connection's fields override; methods compute what
    depends on the connection (its URL, its credentials). ``self.client`` is built once, in the
    constructor, after the subclass's own ``__init__`` work if it calls ``super().__init__`` last
    (or at first use of :attr:`client`).
    """

    name: str
    config: ConnectionT
    budgets: ConnectionBudgets  # set by ConnectorBase

    if TYPE_CHECKING:

        def budget_observers(self) -> Sequence[HeaderObserver]: ...  # ConnectorBase's hook

    error_table: ClassVar[Mapping[int, ErrorRule]] = DEFAULT_ERROR_TABLE
    timeout: ClassVar[float] = 30.0
    max_retries: ClassVar[int] = 3
    initial_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 30.0
    rate_limit_backoff: ClassVar[float] = 1.0
    requests_per_second: ClassVar[float | None] = None
    burst: ClassVar[int | None] = None
    max_wait: ClassVar[float] = 300.0
    describe_error: ClassVar[Callable[[httpx.Response], str | None] | None] = None
    classify: ClassVar[Callable[[httpx.Response], ErrorRule | None] | None] = None

    _client: HttpClient | None = None

    def base_url(self) -> str:
        """The API's root: the connection's ``base_url`` (or ``url``) by default."""
        found = getattr(self.config, "base_url", None) or getattr(self.config, "url", None)
        if not isinstance(found, str):
            raise TypeError(f"{type(self).__name__} must define base_url()")
        return found

    def auth(self) -> httpx.Auth | None:
        """An httpx auth flow (Basic, a token refresher); ``None`` when headers carry it."""
        return None

    def auth_headers(self) -> dict[str, str]:
        """Headers sent with every request (credentials, ``Accept``, API versions)."""
        return {}

    def secrets(self) -> list[str]:
        """Every value to redact from logs and errors: the connection's secret fields."""
        values: list[str] = self.config.secret_values()
        return values

    def budget_policy(self) -> BudgetPolicy:
        """How many requests may be in flight and how fast, from the connection's fields.

        ``requests_per_second`` wins over ``queries_per_hour`` when a connection has both.
        """
        per_second = _field(self.config, "requests_per_second", self.requests_per_second)
        per_hour = getattr(self.config, "queries_per_hour", None)
        if per_second is None and per_hour is not None:
            per_second = per_hour / 3600.0
        concurrency = int(_field(self.config, "max_concurrency", self.concurrency_default()))
        return BudgetPolicy(
            max_concurrency=concurrency,
            requests_per_second=per_second,
            burst=self.burst_size(),
            max_wait=float(_field(self.config, "max_wait", self.max_wait)),
        )

    def burst_size(self) -> int:
        """Requests that may go back to back after a quiet spell: the connection's ``burst``,
        else the class's, else one (a paced connection spreads its requests evenly)."""
        return int(_field(self.config, "burst", self.burst or 1))

    def concurrency_default(self) -> int:
        found = getattr(self, "max_concurrency", 4)
        return int(found)

    def retry_policy(self) -> RetryPolicy:
        """Attempts and pauses: ``max_retries`` from the connection, pauses from the class."""
        retries = int(_field(self.config, "max_retries", self.max_retries))
        return RetryPolicy(
            max_attempts=retries + 1,
            initial_backoff=self.initial_backoff,
            max_backoff=max(self.max_backoff, self.initial_backoff),
            rate_limit_backoff=self.rate_limit_backoff,
        )

    def error_rules(self) -> Mapping[int, ErrorRule]:
        """What each error status means: the class's ``error_table`` by default. Override it
        when the words depend on the connection (which credentials to check, by deployment)."""
        return self.error_table

    def classifier(self) -> Callable[[httpx.Response], ErrorRule | None] | None:
        """The client's verdict on an answer before the error table: the class's ``classify``
        by default. Override it when the verdict acts on this connection (a 429 whose body
        names a limit holds the connection's budget until that limit's window ends)."""
        return type(self).classify

    def credentials_refresher(self) -> Callable[[], Awaitable[None]] | None:
        """What renews the credentials after an answer the error table marks
        ``REFRESH_CREDENTIALS`` (the client calls it once per request, then retries); ``None``:
        such an answer fails at once. Override it for tokens that expire."""
        return None

    def make_client(
        self, *, retry: RetryPolicy | None = None, budget: CallBudget | None = None
    ) -> HttpClient:
        """The connection's client, from the declarations above; the budget also reads the
        vendor's own rate-limit headers through :meth:`budget_observers`.

        A second client of the same connection passes ``budget=self.client.budget`` (it takes
        its turns from the same pace and holds) and its own ``retry`` (one that never retries a
        request that is not idempotent, say).
        """
        if budget is None:
            budget = CallBudget(
                self.budget_policy(),
                shared=self.budgets.bucket("api"),
                extra_observers=self.budget_observers(),
            )
        return HttpClient(
            connection=self.name,
            base_url=self.base_url(),
            headers=self.auth_headers(),
            auth=self.auth(),
            timeout=float(_field(self.config, "timeout", self.timeout)),
            budget=budget,
            retry=retry or self.retry_policy(),
            error_table=self.error_rules(),
            classify=self.classifier(),
            refresh_credentials=self.credentials_refresher(),
            describe_error=type(self).describe_error,
            secrets=self.secrets(),
        )

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    @property
    def api_calls(self) -> int:
        return self._client.calls if self._client is not None else 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class HttpSource(HttpConnection[ConnectionT], Source[ConnectionT, QueryT]):
    """A :class:`Source` over one HTTP API (see the module docstring)."""

    def __init__(self, name: str, config: ConnectionT) -> None:
        super().__init__(name, config)
        self.max_concurrency = int(_field(config, "max_concurrency", self.max_concurrency))


class SubjectSink(Sink[ConnectionT, MirrorT]):
    """A :class:`Sink` whose errors name the mirror they concern.

    Subclasses implement :meth:`push_to` (and :meth:`push_digest_to` when they mirror
    objectives) and may name the mirror (:meth:`mirror_name`) or reword :meth:`subject`; a
    :class:`ConnectorError` raised while pushing is re-raised for this connection and that
    subject, so the delivery's error says which mirror failed. :class:`HttpSink` is this over
    one HTTP client; a sink that keeps its own clients (several budgets, a GraphQL transport)
    uses it directly.
    """

    def mirror_name(self, mirror: MirrorT) -> str | None:
        """The mirror in the vendor's own terms ("acme/shop#12", "project 'Checkout'") for
        :meth:`subject`; ``None`` (the default): :meth:`describe` in brackets instead."""
        return None

    def subject(self, update: KeyResultUpdate | ObjectiveUpdate, mirror: MirrorT) -> str:
        """How errors name the mirror ("mirror acme/shop#12 of key result 'x'")."""
        if isinstance(update, ObjectiveUpdate):
            return f"digest of objective {update.objective_id!r} ({self.describe(mirror)})"
        name = self.mirror_name(mirror)
        if name is not None:
            return f"mirror {name} of key result {update.key_result_id!r}"
        return f"mirror of key result {update.key_result_id!r} ({self.describe(mirror)})"

    async def push(
        self, update: KeyResultUpdate, mirror: MirrorT, previous_ref: str | None
    ) -> PushResult:
        subject = self.subject(update, mirror)
        try:
            return await self.push_to(update, mirror, previous_ref, subject)
        except ConnectorError as exc:
            raise exc.for_subject(self.name, subject) from None

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: MirrorT, previous_ref: str | None
    ) -> PushResult:
        subject = self.subject(update, mirror)
        try:
            return await self.push_digest_to(update, mirror, previous_ref, subject)
        except ConnectorError as exc:
            raise exc.for_subject(self.name, subject) from None

    @abstractmethod
    async def push_to(
        self, update: KeyResultUpdate, mirror: MirrorT, previous_ref: str | None, subject: str
    ) -> PushResult:
        """Deliver ``update`` (``subject`` names it for errors raised inside)."""

    async def push_digest_to(
        self, update: ObjectiveUpdate, mirror: MirrorT, previous_ref: str | None, subject: str
    ) -> PushResult:
        """Deliver an objective digest; sinks that set ``supports_digest`` override this."""
        return await Sink.push_digest(self, update, mirror, previous_ref)


class HttpSink(HttpConnection[ConnectionT], SubjectSink[ConnectionT, MirrorT]):
    """A :class:`SubjectSink` over one HTTP API (see the module docstring)."""
