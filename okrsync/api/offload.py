"""Store work off the event loop: every blocking store call an HTTP handler makes goes through
:func:`in_thread`, so ``/healthz``, webhooks and the other handlers answer while a list call, a
scrape or a pass holds the store.

The threads are bounded by one limiter per event loop (a few at a time, under the store's pool
size), not by anyio's default of 40: forty threads on a two-core box would only queue on the
connection pool, and each holds a connection while it waits.
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
    """``fn(*args, **kwargs)`` in a worker thread; the loop serves other requests meanwhile."""
    return await to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=_limiter())
