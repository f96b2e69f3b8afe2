"""Call budgets shared by every replica on one PostgreSQL store: a ledger kept in ``call_budgets``.

Each turn is one short transaction on the bucket's row: ``SELECT … FOR UPDATE`` (which also reads
the database's clock), the pure arithmetic of :func:`okrsync.sdk.pace.take` under that lock, an
``UPDATE``, ``COMMIT``. Replicas therefore queue on the row, and the turns they book are spaced
as if one process had booked them all. A budget asks once for all of its callers waiting at that
moment (``count``), so concurrent requests share a round trip.

Reading only a hold (a budget that does not pace, just honours the vendor's ``Retry-After``) is a
plain ``SELECT``, and its answer is reused for :data:`HOLD_REFRESH` seconds: a 429 seen by one
replica holds the others within that time at the latest, without a round trip per request.

The store is a dependency the daemon already has, but a budget must not make a request fail
because the store hiccupped: when a round trip fails or takes longer than ``timeout``, turns are
taken from memory (per process, as a single node would) for ``retry_after`` seconds, logged once.
The database work runs on a small thread pool of its own, so a slow store never blocks the event
loop nor starves other users of the default executor.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from okrsync.sdk.ledger import BucketKey, LocalLedger
from okrsync.sdk.pace import BucketState, Pace, Taken, decode_sends, encode_sends, take

log = structlog.get_logger()

HOLD_REFRESH = 1.0  # seconds a bucket's hold, once read, answers hold-only turns
T = TypeVar("T")

# Statements for the driver itself (psycopg, ``%(name)s`` parameters): SQLAlchemy's layer costs
# more per statement than the round trip does, and a turn is made for every request.
_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"
_KEY = "connection = %(connection)s AND bucket = %(bucket)s"
_LOCK_ROW = (
    f"SELECT tokens, refilled_at, sends, hold_until, {_NOW} FROM call_budgets "
    f"WHERE {_KEY} FOR UPDATE"
)
_CREATE_ROW = (
    "INSERT INTO call_budgets (connection, bucket) VALUES (%(connection)s, %(bucket)s) "
    "ON CONFLICT (connection, bucket) DO NOTHING"
)
_SAVE_ROW = (
    "UPDATE call_budgets SET tokens = %(tokens)s, refilled_at = %(refilled_at)s, "
    f"sends = %(sends)s, hold_until = %(hold_until)s WHERE {_KEY}"
)
_READ_HOLD = f"SELECT (SELECT hold_until FROM call_budgets WHERE {_KEY}), {_NOW}"
_HOLD = (
    "INSERT INTO call_budgets AS b (connection, bucket, hold_until) "
    f"VALUES (%(connection)s, %(bucket)s, {_NOW} + %(seconds)s) "
    "ON CONFLICT (connection, bucket) DO UPDATE "
    "SET hold_until = GREATEST(b.hold_until, excluded.hold_until) "
    f"RETURNING b.hold_until, {_NOW}"
)


@dataclass(frozen=True)
class _HoldSeen:
    """A bucket's hold as read from the store, and when (on both clocks) it was read."""

    until: float | None
    db_now: float
    read_at: float  # on this process's monotonic clock

    def left(self, now: float | None) -> float:
        """Seconds of hold left at ``now`` on the ledger's clock (``None``: the store's clock,
        estimated as the time of reading plus the time since)."""
        if self.until is None:
            return 0.0
        if now is None:
            now = self.db_now + (time.monotonic() - self.read_at)
        return max(0.0, self.until - now)


class PostgresLedger:
    """The :class:`~okrsync.sdk.ledger.BudgetLedger` of every replica on one PostgreSQL store.

    ``clock`` replaces the database's clock (tests share a fake one between "replicas");
    ``transactions`` counts the round trips made, to measure what sharing costs.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] | None = None,
        timeout: float = 2.0,
        retry_after: float = 10.0,
        workers: int = 4,
    ) -> None:
        # An engine of its own: a small pool without the app engine's ping before each checkout,
        # which would double the round trips of every turn.
        self._engine = create_engine(
            engine.url, pool_size=workers, max_overflow=0, pool_pre_ping=False
        )
        event.listen(self._engine, "connect", _commit_without_waiting_for_disk)
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="okrsync-budget"
        )
        self._clock = clock
        self._timeout = timeout
        self._retry_after = retry_after
        self._down_until = -math.inf
        self._fallback = LocalLedger()
        self._holds: dict[BucketKey, _HoldSeen] = {}
        self._closed = False
        self.transactions = 0

    # --- the ledger ---------------------------------------------------------------------------

    async def take(
        self, key: BucketKey, pace: Pace | None, *, count: int = 1, max_wait: float = math.inf
    ) -> Taken:
        if pace is None:
            left = await self.hold_left(key)
            return take(BucketState(hold_until=left), 0.0, None, count=count, max_wait=max_wait)
        found = await self._run(self._take_in_store, key, pace, count, max_wait)
        if found is None:
            return self._fallback.take_now(key, pace, count=count, max_wait=max_wait)
        taken, seen = found
        self._holds[key] = seen
        return taken

    async def hold(self, key: BucketKey, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._fallback.hold_now(key, seconds)  # this process holds even if the store is away
        seen = await self._run(self._hold_in_store, key, seconds)
        if seen is not None:
            self._holds[key] = seen

    async def hold_left(self, key: BucketKey) -> float:
        fallback = await self._fallback.hold_left(key)
        seen = self._holds.get(key)
        if seen is None or time.monotonic() - seen.read_at > HOLD_REFRESH:
            seen = await self._run(self._read_hold, key)
            if seen is None:
                return fallback
            self._holds[key] = seen
        return max(fallback, seen.left(None if self._clock is None else self._clock()))

    async def aclose(self) -> None:
        """Stop the workers (one stuck on a dead store is left behind) and close the pool."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._engine.dispose()

    # --- one round trip each, on a worker thread ----------------------------------------------

    def _params(self, key: BucketKey) -> dict[str, object]:
        return {
            "connection": key[0],
            "bucket": key[1],
            "now": None if self._clock is None else self._clock(),
        }

    def _take_in_store(
        self, key: BucketKey, pace: Pace, count: int, max_wait: float
    ) -> tuple[Taken, _HoldSeen]:
        params = self._params(key)
        with self._cursor() as cursor:
            cursor.execute(_LOCK_ROW, params)
            row = cursor.fetchone()
            if row is None:
                cursor.execute(_CREATE_ROW, params)
                cursor.execute(_LOCK_ROW, params)
                row = cursor.fetchone()
            tokens, refilled_at, sends, hold_until, now = row
            before = BucketState(tokens, refilled_at, decode_sends(sends), hold_until)
            taken = take(before, now, pace, count=count, max_wait=max_wait)
            after = taken.state
            if after != before:
                cursor.execute(
                    _SAVE_ROW,
                    {
                        **params,
                        "tokens": after.tokens,
                        "refilled_at": after.refilled_at,
                        "sends": encode_sends(after.sends),
                        "hold_until": after.hold_until,
                    },
                )
        return taken, _HoldSeen(after.hold_until, now, time.monotonic())

    def _hold_in_store(self, key: BucketKey, seconds: float) -> _HoldSeen:
        with self._cursor() as cursor:
            cursor.execute(_HOLD, {**self._params(key), "seconds": seconds})
            until, now = cursor.fetchone()
        return _HoldSeen(until, now, time.monotonic())

    def _read_hold(self, key: BucketKey) -> _HoldSeen:
        with self._cursor() as cursor:
            cursor.execute(_READ_HOLD, self._params(key))
            until, now = cursor.fetchone()
        return _HoldSeen(until, now, time.monotonic())

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor in one transaction on a pooled connection: committed when the block ends,
        rolled back (and the connection dropped from the pool) if anything fails."""
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            yield cursor
            connection.commit()
        except BaseException:
            connection.invalidate()
            raise
        finally:
            connection.close()

    async def _run(self, work: Callable[..., T], *args: object) -> T | None:
        """``work`` on a worker thread; ``None`` (and memory for a while) if the store fails."""
        if self._closed or time.monotonic() < self._down_until:
            return None
        try:
            done = self._executor.submit(work, *args)
            result = await asyncio.wait_for(asyncio.wrap_future(done), self._timeout)
        except (SQLAlchemyError, psycopg.Error, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._retry_after
            log.warning(
                "call_budget_store_unavailable",
                error=type(exc).__name__,
                per_process_for=self._retry_after,
            )
            return None
        self.transactions += 1
        return result


def _commit_without_waiting_for_disk(dbapi_connection: Any, _record: object) -> None:
    """A budget's row is a few milliseconds of pacing: losing its last writes in a crash of the
    database costs nothing, while waiting for the disk at each commit would double a turn's
    time. So this pool's sessions commit asynchronously (only theirs; the rest of the store
    keeps its durability)."""
    dbapi_connection.execute("SET synchronous_commit TO off")
    dbapi_connection.commit()


def ledger_for(engine: Engine) -> PostgresLedger | None:
    """The shared ledger for a PostgreSQL store; ``None`` for SQLite (one daemon per file, whose
    budgets in memory are already exact)."""
    if engine.dialect.name == "postgresql":
        return PostgresLedger(engine)
    return None
