"""A proactive call budget for one connection: pace requests before the vendor has to say no.

Reacting to 429s alone wastes calls and, on some vendors (Jira, GitHub), makes the penalty
longer. So every request of a connection first takes a slot here: a concurrency slot, then a
token from a token bucket, and it also waits out any *hold* — a time before which nobody on this
connection may send, learnt from a ``Retry-After`` or from rate-limit headers saying the window
is spent. When the wait would be longer than the policy allows, the budget raises
:class:`~okrsync.errors.QuotaExhaustedError`: the scheduler pauses the connection instead of
failing its metrics, and tries again after ``resume_at``.

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

HeaderObserver = Callable[[httpx.Headers], float | None]
"""A vendor-specific reader of response headers: seconds to hold the connection, or ``None``."""

# A reset value above this is a Unix timestamp (GitHub); below it, a delay in seconds.
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
    """The pace of one connection, shared by every request it makes."""

    def __init__(
        self,
        policy: BudgetPolicy | None = None,
        *,
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
        self._tokens = float(self.policy.burst)
        self._refilled_at = clock()
        self._hold_until = -math.inf
        self.calls = 0  # requests that got a slot

    # --- taking a slot ------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until this connection may send one request, and keep its concurrency slot.

        The concurrency slot is taken first and the rate wait happens while holding it: taking
        tokens first and then queueing for a slot would let several queued requests leave
        together, breaking the pace the bucket promised.
        """
        async with self._slots:
            await self._wait_for_rate()
            self.calls += 1
            yield

    async def _wait_for_rate(self) -> None:
        await self._wait_out_hold()
        rate = self._rate
        if rate is None:
            return
        now = self._clock()
        self._refill(now, rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = (1.0 - self._tokens) / rate
        self._check_wait(wait, "the connection's request rate")
        # Reserve the token now (the balance goes negative) so that the next caller queues
        # behind this one instead of computing the same wake-up time.
        self._tokens -= 1.0
        await self._sleep(wait)
        await self._wait_out_hold()

    def _refill(self, now: float, rate: float) -> None:
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(float(self.policy.burst), self._tokens + elapsed * rate)
        self._refilled_at = now

    async def _wait_out_hold(self) -> None:
        # A loop, because a 429 seen by another request while we slept may extend the hold.
        while (remaining := self._hold_until - self._clock()) > 0:
            self._check_wait(remaining, "the vendor's rate limit")
            await self._sleep(remaining)

    def _check_wait(self, wait: float, reason: str) -> None:
        if wait > self.policy.max_wait:
            raise QuotaExhaustedError(
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

        Tokens already earned stay earned (the bucket is refilled at the old rate up to now);
        a budget built without a rate has nothing to adapt and stays unpaced.
        """
        if not rate > 0:
            raise ValueError("rate must be positive")
        if self._rate is None:
            return
        self._refill(self._clock(), self._rate)
        self._rate = rate

    def hold_until(self, seconds_from_now: float) -> None:
        """Nobody on this connection sends for ``seconds_from_now`` seconds (holds only grow)."""
        if not math.isfinite(seconds_from_now) or seconds_from_now <= 0:
            return
        self._hold_until = max(self._hold_until, self._clock() + seconds_from_now)

    def held_for(self) -> float:
        """Seconds until the current hold ends (0 when there is none)."""
        return max(0.0, self._hold_until - self._clock())

    def observe(self, headers: httpx.Headers) -> None:
        """Hold the connection when a response says its window is spent.

        Understood: ``X-RateLimit-Remaining``/``-Reset`` (reset as epoch seconds like GitHub,
        delta seconds, or an ISO-8601 timestamp like Jira), the IETF ``RateLimit-Remaining``/
        ``-Reset`` pair and its combined ``RateLimit: ...;r=0;t=30`` form, and HubSpot's
        ``X-HubSpot-RateLimit-Remaining`` (whose window is ``-Interval-Milliseconds`` long) and
        ``-Secondly-Remaining``. Connectors add vendor-specific readers as ``extra_observers``.
        """
        holds: list[float | None] = [
            self._reset_hold(headers, "x-ratelimit-remaining", "x-ratelimit-reset"),
            self._reset_hold(headers, "ratelimit-remaining", "ratelimit-reset"),
            _ietf_combined_hold(headers.get("ratelimit")),
            _hubspot_hold(headers),
        ]
        holds.extend(observer(headers) for observer in self.extra_observers)
        for hold in holds:
            if hold is not None:
                self.hold_until(min(hold, _MAX_OBSERVED_HOLD))

    def _reset_hold(self, headers: httpx.Headers, remaining: str, reset: str) -> float | None:
        if _number(headers.get(remaining)) != 0:
            return None
        return self._seconds_until_reset(headers.get(reset))

    def _seconds_until_reset(self, value: str | None) -> float | None:
        if value is None:
            return None
        number = _number(value)
        if number is not None:
            if number >= _EPOCH_THRESHOLD:
                return number - self._wall_clock()
            return number
        when = _parse_timestamp(value.strip())
        if when is None:
            return None
        return when.timestamp() - self._wall_clock()


def _number(value: str | None) -> float | None:
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
    if _number(params.get("r")) != 0:
        return None
    return _number(params.get("t"))


def _hubspot_hold(headers: httpx.Headers) -> float | None:
    """HubSpot does not say when its window resets, so hold for one whole window."""
    if _number(headers.get("x-hubspot-ratelimit-remaining")) == 0:
        interval_ms = _number(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
        return interval_ms / 1000.0 if interval_ms is not None else None
    if _number(headers.get("x-hubspot-ratelimit-secondly-remaining")) == 0:
        return 1.0
    return None
