"""The classes a connector author subclasses: one live connection that is a Source, a Sink or both.

A plugin module exposes a :class:`Connector` under the ``okrsync.connectors`` entry-point group.
The core never imports a connector by name; it asks the entry point for the descriptor, validates
the connection's YAML against ``connection_model``, each metric against the implementation's
``query_model`` and each mirror against its ``mirror_model``, then creates one instance per
connection, which owns one HTTP client for its whole life.

Whatever else is particular to a vendor is a hook of the descriptor, each with a default that
suits a connector which says nothing: ``verify_webhook`` (how an inbound webhook's signature is
checked; default okrsync's own scheme, :mod:`okrsync.sdk.webhooks`) and ``fake`` /
``sandbox_credentials`` / ``demo_fake`` (the sandbox a connection of this type uses in the demo,
:meth:`Connector.fake_for`). The live connection's :meth:`ConnectorBase.budget_observers` read
the vendor's own rate-limit headers, for the call budget it builds.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, SecretStr

from okrsync.errors import ConnectorError, PluginError
from okrsync.sdk.budget import HeaderObserver
from okrsync.sdk.ledger import BudgetLedger, ConnectionBudgets
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult, Query, Reading
from okrsync.sdk.webhooks import WebhookVerifier, verify_okrsync_webhook
from okrsync.sdk.work import WorkQuery, WorkTracker


class ConnectionConfig(BaseModel):
    """Fields every connection has. Connectors subclass it; secret fields are ``SecretStr``."""

    model_config = ConfigDict(extra="forbid")

    type: str

    def secret_values(self) -> list[str]:
        """Every secret this connection holds, so logs and errors can redact them."""
        found: list[str] = []

        def walk(value: object) -> None:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for item in value.__dict__.values():
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self)
        return [s for s in found if s]


class QuerySpec(BaseModel):
    """Base of a connector's metric fields (what to ask); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def query_text(self) -> str:
        """The query as a human reads it in ``explain`` (SQL text, JQL, JSON path…)."""
        return self.model_dump_json(exclude_none=True)

    def is_count(self) -> bool:
        """Whether the answer counts something (issues, records, events): a count is never
        negative, and the core refuses a negative one as it refuses any implausible reading."""
        return False


class MirrorSpec(BaseModel):
    """Base of a connector's mirror fields (where to push); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConnectionT = TypeVar("ConnectionT", bound=ConnectionConfig)
QueryT = TypeVar("QueryT", bound=QuerySpec)
MirrorT = TypeVar("MirrorT", bound=MirrorSpec)


class ConnectorBase(Generic[ConnectionT]):
    """One live, configured connection.

    ``budgets`` hands out the connection's call-budget buckets
    (``CallBudget(policy, shared=self.budgets.bucket("api"))``): kept in memory until the core
    says where replicas share them (:meth:`Connector.create`).
    """

    def __init__(self, name: str, config: ConnectionT) -> None:
        self.name = name
        self.config = config
        self.budgets = ConnectionBudgets(name)

    @property
    def api_calls(self) -> int:
        """Requests sent to the vendor so far (HTTP connectors report their client's count)."""
        return 0

    def budget_observers(self) -> Sequence[HeaderObserver]:
        """Readers of the vendor's own rate-limit headers, for the call budget this connection
        builds (``CallBudget(..., extra_observers=self.budget_observers())``). Default: none; the
        budget itself reads only the standard ``X-RateLimit-*`` and ``RateLimit-*`` headers."""
        return ()

    async def aclose(self) -> None:
        """Release the connection's client; called once when the daemon stops."""


class Source(ConnectorBase[ConnectionT], Generic[ConnectionT, QueryT], ABC):
    """Answers queries with numbers.

    Override :meth:`fetch_one` for one request per query, or :meth:`fetch` when the vendor can
    answer several queries at once (a GA4 report with several metrics, a SOQL ``GROUP BY``); in
    that case :meth:`batch_key` tells which queries may share a request.
    """

    query_model: ClassVar[type[QuerySpec]]
    max_concurrency: int = 4  # queries in flight at once; a connection may lower or raise it

    def batch_key(self, spec: QueryT) -> str:
        """Queries with the same batch key may be answered by one request. Default: none batch."""
        return ""

    def request_key(self, spec: QueryT) -> str:
        """What the scheduler aligns on: metrics of this connection whose specs have equal
        request keys fall due together (one jitter, one tick grid), so one pass sends their
        request once. Override it when one request answers more than :meth:`batch_key` groups
        (several reports in one batch call, say). Default: the batch key when the source
        batches, else the whole spec (only identical questions align)."""
        return self.batch_key(spec) or spec.model_dump_json()

    async def fetch(self, queries: Sequence[Query[QueryT]]) -> list[Reading]:
        """Answer every query; a failure becomes that query's reading error, never an exception."""
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(query: Query[QueryT]) -> Reading:
            async with limit:
                try:
                    return await self.fetch_one(query)
                except ConnectorError as exc:
                    return failed_reading(query, exc.for_subject(self.name, query.subject))

        return list(await asyncio.gather(*(one(q) for q in queries)))

    @abstractmethod
    async def fetch_one(self, query: Query[QueryT]) -> Reading:
        """Answer one query."""


@dataclass(frozen=True)
class PushContext:
    """What the dispatcher knows about one delivery besides the update itself.

    ``previous_ref`` is what the last successful push to the mirror returned. ``first_attempt``
    is true only when the store shows that no push to this mirror was ever attempted (no
    reference, and no earlier claim of any of its deliveries, including claims a crash cut
    short): then nothing a push created can exist at the vendor yet, and a sink may skip looking
    for it. False whenever that is not certain, which is the safe default.
    """

    previous_ref: str | None = None
    first_attempt: bool = False


class Sink(ConnectorBase[ConnectionT], Generic[ConnectionT, MirrorT], ABC):
    """Pushes a key result's state somewhere people look.

    ``previous_ref`` is what the last successful push to the same mirror returned (a message ts, a
    comment id); a sink that creates things must update that thing instead of creating another.
    The dispatcher calls :meth:`deliver`; a sink overrides it only to use the rest of the
    :class:`PushContext` (the default hands :meth:`push` or :meth:`push_digest` the reference).
    """

    mirror_model: ClassVar[type[MirrorSpec]]
    supports_digest: ClassVar[bool] = False  # can mirror a whole objective in one message

    @abstractmethod
    async def push(
        self, update: KeyResultUpdate, mirror: MirrorT, previous_ref: str | None
    ) -> PushResult:
        """Deliver ``update``; raise a ConnectorError subclass on failure."""

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: MirrorT, previous_ref: str | None
    ) -> PushResult:
        """Deliver an objective digest; sinks that set ``supports_digest`` override this."""
        raise PluginError(f"connection {self.name!r} cannot mirror a whole objective")

    async def deliver(
        self, update: KeyResultUpdate | ObjectiveUpdate, mirror: MirrorT, context: PushContext
    ) -> PushResult:
        """One delivery from the outbox (the dispatcher's entry point)."""
        if isinstance(update, ObjectiveUpdate):
            return await self.push_digest(update, mirror, context.previous_ref)
        return await self.push(update, mirror, context.previous_ref)

    def describe(self, mirror: MirrorT) -> str:
        """One line naming where this mirror pushes, for ``plan``."""
        return f"{self.name} {mirror.model_dump_json(exclude_none=True)}"


def failed_reading(query: Query[Any], error: ConnectorError) -> Reading:
    return Reading(
        key=query.key,
        value=None,
        query_text=query.spec.query_text(),
        fetched_at=datetime.now(UTC),
        error=error,
    )


@dataclass(frozen=True)
class ImportedFactory:
    """A factory named ``"package.module:attribute"``, imported when first called.

    For :attr:`Connector.fake`: ``okrsync validate``, ``status`` and the daemon load every plugin
    but never start a sandbox, so a fake (an ASGI app, its data, its router) is imported only by
    what calls it: ``okrsync demo``, the tests and the benchmarks.
    """

    target: str

    def resolve(self) -> Callable[..., Any]:
        module, _, attribute = self.target.partition(":")
        found = getattr(import_module(module), attribute)
        if not callable(found):
            raise PluginError(f"{self.target!r} is not callable")
        return cast("Callable[..., Any]", found)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


@dataclass(frozen=True)
class SandboxFake:
    """The sandbox one connection uses in the demo: the fake's ASGI app, and the credentials it
    accepts (the demo offers them to the config as ``${DEMO_<CONNECTION>_<KEY>}``)."""

    app: Any
    credentials: Mapping[str, str] = field(default_factory=dict)


class DemoFake(Protocol):
    """A connector's ``demo_fake`` hook: the sandbox for ``connection``, the connection's entry
    as written in the config (``${...}`` references not yet resolved, as they name the fake's
    URL), or ``None`` when this connection runs without one."""

    def __call__(self, connection: Mapping[str, Any]) -> SandboxFake | None: ...


ConnectionModel = type[ConnectionConfig]
QueryModel = type[QuerySpec]
MirrorModel = type[MirrorSpec]
WorkModel = type[WorkQuery]
Implementation = type[ConnectorBase[Any]]


@dataclass(frozen=True)
class Connector:
    """A plugin's descriptor, published under the ``okrsync.connectors`` entry-point group."""

    type: str
    summary: str
    connection_model: ConnectionModel
    implementation: Implementation
    # An ASGI app factory: the vendor's sandbox fake. Give an ``ImportedFactory`` so that loading
    # the plugin does not import its fake (only ``okrsync demo``, tests and benchmarks call it).
    fake: Callable[[], Any] | None = None
    # Credentials the fake accepts (public, made up), for ``okrsync demo`` and examples; a
    # callable when they are costly to make (a generated key pair).
    sandbox_credentials: Mapping[str, str] | Callable[[], Mapping[str, str]] = field(
        default_factory=dict
    )
    # How ``POST /hooks/{connection}`` checks who signed an inbound webhook for a connection of
    # this type. Default: okrsync's own scheme.
    verify_webhook: WebhookVerifier = verify_okrsync_webhook
    # The sandbox a connection uses in the demo, derived from its config; import the fake inside
    # the hook. Default (``None``): ``fake`` with ``sandbox_credentials``, see :meth:`fake_for`.
    demo_fake: DemoFake | None = None

    @property
    def query_model(self) -> QueryModel | None:
        if issubclass(self.implementation, Source):
            return self.implementation.query_model
        return None

    @property
    def mirror_model(self) -> MirrorModel | None:
        if issubclass(self.implementation, Sink):
            return self.implementation.mirror_model
        return None

    @property
    def work_model(self) -> WorkModel | None:
        """The fields of a ``work`` entry for this connector, when it can list work items."""
        if issubclass(self.implementation, WorkTracker):
            return self.implementation.work_model
        return None

    @property
    def supports_digest(self) -> bool:
        return issubclass(self.implementation, Sink) and self.implementation.supports_digest

    def sandbox(self) -> Mapping[str, str]:
        """The credentials the connector's fake accepts."""
        found = self.sandbox_credentials
        return found() if callable(found) else found

    def fake_for(self, connection: Mapping[str, Any]) -> SandboxFake | None:
        """The sandbox ``connection`` (its config entry as written) uses in the demo.

        ``demo_fake`` when the connector has the hook; else a fresh ``fake()`` with the
        credentials of :meth:`sandbox`; ``None`` when the connector ships no fake.
        """
        if self.demo_fake is not None:
            return self.demo_fake(connection)
        if self.fake is None:
            return None
        return SandboxFake(self.fake(), dict(self.sandbox()))

    def create(
        self, name: str, config: ConnectionConfig, *, ledger: BudgetLedger | None = None
    ) -> ConnectorBase[Any]:
        """One live connection; with ``ledger``, its call budgets' buckets are kept there.

        The ledger is given after the instance is made, so connector constructors keep their
        ``(name, config)`` signature; buckets handed out in the constructor follow it.
        """
        live = self.implementation(name, config)
        budgets = getattr(live, "budgets", None)
        if ledger is not None and isinstance(budgets, ConnectionBudgets):
            budgets.use(ledger)
        return live
