"""Store work off the event loop: every blocking store call made from async code (the daemon's
scheduler and dispatcher, the HTTP handlers) goes through :func:`in_thread`, so ``/healthz``,
webhooks and the API answer while a pass records, a list call runs or a scrape holds the store.

The threads are bounded by one limiter per event loop (a few at a time, under the store's pool
size), not by anyio's default of 40: forty threads on a two-core box would only queue on the
connection pool, and each holds a connection while it waits.

A call in flight is not abandoned when its task is cancelled: the cancellation is delivered once
the thread returned, so a transaction is committed or rolled back whole, as it was when the call
ran on the loop itself.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from anyio import CapacityLimiter, to_thread

STORE_THREADS = 4  # SQLAlchemy's default pool keeps 5 connections; one stays for the engine

P = ParamSpec("P")
T = TypeVar("T")

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _limiter() -> CapacityLimiter:
    """This loop's limiter (a limiter's waiters belong to one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(STORE_THREADS)
    return limiter


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread; the loop serves other work meanwhile."""
    return await to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=_limiter())
