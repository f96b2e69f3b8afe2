"""Where call budgets keep their pace and holds, so that replicas can share one budget.

A vendor counts a connection's calls per workspace, account or token, not per okrsync process:
three replicas that each paced themselves to a vendor's 50 calls a minute would together send
150. So a :class:`~okrsync.sdk.budget.CallBudget` keeps the state of its bucket — tokens, recent
sends, the vendor's hold — in a :class:`BudgetLedger`. In one process the ledger is memory
(:class:`LocalLedger`, exact for a single node); when replicas share a PostgreSQL store the core
hands every connection a ledger kept in that store, and the budget is one across all of them.
Concurrency slots stay in the process: they bound this process's own requests in flight.

The SDK never imports the store: a connector asks its connection for a bucket by name
(``self.budgets.bucket("search")``) and gives it to its budget; the core decides which ledger is
behind it (:meth:`ConnectionBudgets.use`, called by :meth:`Connector.create
<okrsync.sdk.connector.Connector.create>`). A connector that builds its budgets without a bucket
still works, paced per process as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from okrsync.sdk.pace import BucketState, Pace, Taken, hold, hold_left, take

BucketKey = tuple[str, str]
"""``(connection, bucket)``: the connection's name and the bucket's name within it."""


class BudgetLedger(Protocol):
    """The keeper of buckets' state: one per process (memory) or one per store (shared).

    Waits are seconds from the ledger's own "now", so replicas whose clocks disagree still agree
    on the order of turns when they share a ledger with one clock (the database's).
    """

    async def take(
        self, key: BucketKey, pace: Pace | None, *, count: int, max_wait: float
    ) -> Taken:
        """Book the next ``count`` turns of a bucket (see :func:`okrsync.sdk.pace.take`)."""
        ...

    async def hold(self, key: BucketKey, seconds: float) -> None:
        """Nobody sends on this bucket for ``seconds`` from now (holds only grow)."""
        ...

    async def hold_left(self, key: BucketKey) -> float:
        """Seconds until the bucket's hold ends (0 when there is none)."""
        ...


class LocalLedger:
    """Buckets kept in this process's memory: exact when one process is the only caller."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[BucketKey, BucketState] = {}

    async def take(
        self, key: BucketKey, pace: Pace | None, *, count: int = 1, max_wait: float = math.inf
    ) -> Taken:
        return self.take_now(key, pace, count=count, max_wait=max_wait)

    def take_now(
        self, key: BucketKey, pace: Pace | None, *, count: int = 1, max_wait: float = math.inf
    ) -> Taken:
        """:meth:`take` without awaiting: for a shared ledger falling back to memory."""
        taken = take(
            self._states.get(key, BucketState()),
            self._clock(),
            pace,
            count=count,
            max_wait=max_wait,
        )
        self._states[key] = taken.state
        return taken

    async def hold(self, key: BucketKey, seconds: float) -> None:
        self.hold_now(key, seconds)

    def hold_now(self, key: BucketKey, seconds: float) -> None:
        self._states[key] = hold(self._states.get(key, BucketState()), self._clock(), seconds)

    async def hold_left(self, key: BucketKey) -> float:
        return hold_left(self._states.get(key, BucketState()), self._clock())


class ConnectionBudgets:
    """The buckets of one connection, in whichever ledger the core hands it.

    Every connector instance has one as ``self.budgets``. Until the core calls :meth:`use` it is
    backed by memory; buckets handed out before that follow the switch, because a
    :class:`SharedBucket` asks for the ledger at each turn.
    """

    def __init__(self, connection: str, ledger: BudgetLedger | None = None) -> None:
        self.connection = connection
        self.ledger: BudgetLedger = ledger if ledger is not None else LocalLedger()

    def use(self, ledger: BudgetLedger) -> None:
        """Keep this connection's buckets in ``ledger`` from now on."""
        self.ledger = ledger

    def bucket(self, name: str) -> SharedBucket:
        """The bucket ``name`` of this connection (the same name means the same bucket)."""
        return SharedBucket(self, name)


class SharedBucket:
    """One named bucket of a connection, as a call budget sees it."""

    def __init__(self, owner: ConnectionBudgets, name: str) -> None:
        self.owner = owner
        self.name = name

    @property
    def key(self) -> BucketKey:
        return (self.owner.connection, self.name)

    async def take(self, pace: Pace | None, *, count: int = 1, max_wait: float = math.inf) -> Taken:
        return await self.owner.ledger.take(self.key, pace, count=count, max_wait=max_wait)

    async def hold(self, seconds: float) -> None:
        await self.owner.ledger.hold(self.key, seconds)

    async def hold_left(self) -> float:
        return await self.owner.ledger.hold_left(self.key)


def private_bucket(clock: Callable[[], float] = time.monotonic) -> SharedBucket:
    """A bucket nobody else sees: what a budget built without one uses."""
    return ConnectionBudgets("", LocalLedger(clock)).bucket("")
