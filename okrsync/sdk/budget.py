"""A proactive call budget for one connection: pace requests before the vendor has to say no.

Reacting to 429s alone wastes calls and, on some vendors (Jira, GitHub), makes the penalty
longer. So every request of a connection first takes a slot here: a concurrency slot, then a
token from a token bucket, and it also waits out any *hold* — a time before which nobody on this
connection may send, learnt from a ``Retry-After`` or from rate-limit headers saying the window
is spent. When the wait would be longer than the policy allows, the budget raises
:class:`~okrsync.errors.QuotaExhaustedError`: the scheduler pauses the connection instead of
failing its metrics, and tries again after ``resume_at``.

The tokens and the hold live in a bucket of a :mod:`ledger <okrsync.sdk.ledger>`: in memory for
one process, or in the store shared by every replica, so that a connection's limit is one limit
however many daemons call the vendor (the arithmetic is :mod:`okrsync.sdk.pace`). Concurrency
slots stay per process: they bound this process's own requests in flight.

Time is injected (``clock``, ``wall_clock``, ``sleep``) so the arithmetic is tested with a fake
clock rather than by sleeping.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from okrsync.errors import QuotaExhaustedError
from okrsync.sdk.ledger import SharedBucket, private_bucket
from okrsync.sdk.pace import Pace, SlidingWindow, Taken, TokenBucket

HeaderObserver = Callable[[httpx.Headers], float | None]
"""A connector's budget observer: a reader of its vendor's own rate-limit headers, answering the
seconds to hold the connection, or ``None``. A connection declares its observers in
:meth:`~okrsync.sdk.connector.ConnectorBase.budget_observers` and hands them to the budget it
builds (``CallBudget(..., extra_observers=self.budget_observers())``); every response its
:class:`~okrsync.sdk.http.HttpClient` receives is shown to them (:meth:`CallBudget.observe`)."""

# A reset value above this is a Unix timestamp; below it, a delay in seconds.
_EPOCH_THRESHOLD = 1_000_000_000.0
# No header may park a connection for longer than a day: beyond that it is a misread.
_MAX_OBSERVED_HOLD = 86_400.0
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class BudgetPolicy:
    """How hard one connection may call its vendor."""

    max_concurrency: int = 4
    requests_per_second: float | None = None  # token bucket refill rate; None = unlimited
    burst: int = 1  # bucket size: requests that may go back to back after a quiet spell
    max_wait: float = 300.0  # a longer wait for a slot pauses the connection instead

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.requests_per_second is not None and not self.requests_per_second > 0:
            raise ValueError("requests_per_second must be positive (or None for no limit)")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.max_wait < 0:
            raise ValueError("max_wait must not be negative")


class CallBudget:
    """The pace of one connection, shared by every request it makes.

    The rate and the holds live in a bucket (``shared``): by default one only this budget sees;
    a connector passes ``self.budgets.bucket(name)`` so that, when the core keeps its
    connections' buckets in the store, every replica takes its turns from the same bucket.
    ``pace`` replaces the token bucket of ``policy`` by another shape of limit (a sliding window).
    """

    def __init__(
        self,
        policy: BudgetPolicy | None = None,
        *,
        shared: SharedBucket | None = None,
        pace: SlidingWindow | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        extra_observers: Sequence[HeaderObserver] = (),
    ) -> None:
        self.policy = policy or BudgetPolicy()
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self.extra_observers: list[HeaderObserver] = list(extra_observers)
        self._slots = asyncio.Semaphore(self.policy.max_concurrency)
        self._rate = self.policy.requests_per_second
        self._window = pace
        self._shared = shared if shared is not None else private_bucket(clock)
        self._hold_until = -math.inf  # what this process knows of the hold, on ``clock``
        self._queue: list[asyncio.Future[float]] = []  # callers waiting for the bucket's answer
        self._taking: asyncio.Task[None] | None = None
        self._unpublished: list[float] = []  # holds learnt outside an event loop
        self._publishing: set[asyncio.Task[None]] = set()
        self.calls = 0  # requests that got a slot

    def share(self, bucket: SharedBucket) -> None:
        """Take this budget's turns and keep its holds in ``bucket`` from now on.

        For budgets built by a helper that knows nothing of the connection
        (:func:`~okrsync.sdk.http.hourly_allowance`).
        """
        self._shared = bucket

    @property
    def pace(self) -> Pace | None:
        """The limit turns are taken under (``None``: only the vendor's holds)."""
        if self._window is not None:
            return self._window
        if self._rate is None:
            return None
        return TokenBucket(self._rate, self.policy.burst)

    # --- taking a slot ------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until this connection may send one request, and keep its concurrency slot.

        The concurrency slot is taken first and the rate wait happens while holding it: taking
        tokens first and then queueing for a slot would let several queued requests leave
        together, breaking the pace the bucket promised. Holds learnt while the slot was held
        (from the answer's headers) are in the bucket before the slot is given back, so another
        replica's next turn already sees them.
        """
        async with self._slots:
            await self._publish_holds()
            await self._wait_for_rate()
            self.calls += 1
            yield
            await self._publish_holds()

    async def _wait_for_rate(self) -> None:
        await self._wait_out_hold()
        wait = await self._take_turn()
        if wait <= 0:
            return
        await self._sleep(wait)
        # A hold learnt while we slept, here or by another replica, still applies.
        self._learn_hold(await self._shared.hold_left())
        await self._wait_out_hold()

    async def _take_turn(self) -> float:
        """This caller's wait, booked in the bucket together with the callers queued with it.

        Callers that arrive while the bucket is being asked queue for the next question, so a
        shared bucket costs one round trip per batch of concurrent callers, not one per caller.
        """
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        if self._taking is None:
            self._taking = asyncio.create_task(self._take_queued())
        return await waiter

    async def _take_queued(self) -> None:
        batch: list[asyncio.Future[float]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    taken = await self._shared.take(
                        self.pace, count=len(batch), max_wait=self.policy.max_wait
                    )
                except Exception as exc:  # a ledger failing outright: each caller hears it
                    for waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                self._learn_hold(taken.hold_left)
                for index, waiter in enumerate(batch):
                    if waiter.done():
                        continue  # cancelled: the turn it booked goes unused
                    if index < len(taken.waits):
                        waiter.set_result(taken.waits[index])
                    else:
                        waiter.set_exception(self._exhausted(taken))
        except asyncio.CancelledError:
            for waiter in [*batch, *self._queue]:
                waiter.cancel()
            self._queue = []
            raise
        finally:
            self._taking = None

    def _exhausted(self, taken: Taken) -> QuotaExhaustedError:
        wait = taken.refused if taken.refused is not None else math.inf
        reason = (
            "the vendor's rate limit" if taken.reason == "hold" else "the connection's request rate"
        )
        return self._quota_error(wait, reason)

    async def _wait_out_hold(self) -> None:
        # A loop, because a 429 seen by another request while we slept may extend the hold.
        while (remaining := self._hold_until - self._clock()) > 0:
            self._check_wait(remaining, "the vendor's rate limit")
            await self._sleep(remaining)

    def _check_wait(self, wait: float, reason: str) -> None:
        if wait > self.policy.max_wait:
            raise self._quota_error(wait, reason)

    def _quota_error(self, wait: float, reason: str) -> QuotaExhaustedError:
        return QuotaExhaustedError(
            f"call budget exhausted: {reason} asks for a {wait:.0f}s wait, "
            f"more than the {self.policy.max_wait:.0f}s allowed; pausing the connection",
            resume_at=self._wall_clock() + wait,
        )

    # --- learning from the vendor -------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The pace now, in requests per second (``None``: this budget does not pace)."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` from now on: for a connector that adapts to its vendor's signals.

        The bucket refills at the new rate from its last turn on; a budget built without a rate
        has nothing to adapt and stays unpaced.
        """
        if not rate > 0:
            raise ValueError("rate must be positive")
        if self._rate is None:
            return
        self._rate = rate

    def hold_until(self, seconds_from_now: float) -> None:
        """Nobody on this connection sends for ``seconds_from_now`` seconds (holds only grow).

        This process knows at once; the bucket (and so every replica sharing it) as soon as the
        write is done, which a slot awaits before it is given back.
        """
        if not math.isfinite(seconds_from_now) or seconds_from_now <= 0:
            return
        self._learn_hold(seconds_from_now)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._unpublished.append(seconds_from_now)
            return
        task = loop.create_task(self._shared.hold(seconds_from_now))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_holds(self) -> None:
        while self._unpublished:
            await self._shared.hold(self._unpublished.pop())
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)

    def _learn_hold(self, seconds_from_now: float) -> None:
        if seconds_from_now > 0:
            self._hold_until = max(self._hold_until, self._clock() + seconds_from_now)

    def held_for(self) -> float:
        """Seconds until the current hold ends (0 when there is none), as this process knows."""
        return max(0.0, self._hold_until - self._clock())

    def observe(self, headers: httpx.Headers) -> None:
        """Hold the connection when a response says its window is spent.

        Understood: ``X-RateLimit-Remaining``/``-Reset`` (reset as epoch seconds, delta seconds
        or an ISO-8601 timestamp), the IETF ``RateLimit-Remaining``/``-Reset`` pair and its
        combined ``RateLimit: ...;r=0;t=30`` form. Headers of a vendor's own are read by the
        connector's observers (``extra_observers``, see :class:`HeaderObserver`).
        """
        holds: list[float | None] = [
            self._reset_hold(headers, "x-ratelimit-remaining", "x-ratelimit-reset"),
            self._reset_hold(headers, "ratelimit-remaining", "ratelimit-reset"),
            _ietf_combined_hold(headers.get("ratelimit")),
        ]
        holds.extend(observer(headers) for observer in self.extra_observers)
        for hold in holds:
            if hold is not None:
                self.hold_until(min(hold, _MAX_OBSERVED_HOLD))

    def _reset_hold(self, headers: httpx.Headers, remaining: str, reset: str) -> float | None:
        if header_number(headers.get(remaining)) != 0:
            return None
        return self._seconds_until_reset(headers.get(reset))

    def _seconds_until_reset(self, value: str | None) -> float | None:
        if value is None:
            return None
        number = header_number(value)
        if number is not None:
            if number >= _EPOCH_THRESHOLD:
                return number - self._wall_clock()
            return number
        when = _parse_timestamp(value.strip())
        if when is None:
            return None
        return when.timestamp() - self._wall_clock()


def header_number(value: str | None) -> float | None:
    """A header's value as a number (for observers), or ``None`` when it is missing or not one."""
    if value is None:
        return None
    text = value.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _parse_timestamp(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ietf_combined_hold(value: str | None) -> float | None:
    """``RateLimit: "default";r=0;t=30`` (draft-ietf-httpapi-ratelimit-headers, later drafts)."""
    if not value:
        return None
    params: dict[str, str] = {}
    for part in value.split(",")[0].split(";"):
        key, _, val = part.strip().partition("=")
        params[key.strip().lower()] = val.strip()
    if header_number(params.get("r")) != 0:
        return None
    return header_number(params.get("t"))
