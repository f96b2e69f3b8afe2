"""Staying inside the org's daily API allocation, which every integration of the org shares.

Salesforce counts API calls per org over a rolling 24 hours and reports the count on every REST
answer: ``Sforce-Limit-Info: api-usage=25/15000`` (calls used by the whole org / its allocation).
When the org passes its allocation, Salesforce answers ``403 REQUEST_LIMIT_EXCEEDED`` to *every*
user and integration of the org, not only to us: a reporting daemon must never be the one that
tips it over. So two guards are checked before each call, and either one pauses the connection
(:class:`~okrsync.errors.QuotaExhaustedError`: the daemon shows ``paused_quota``, not failed):

1. **Our own share** — ``used_by_us / limit``: the calls *this connection* sent in the last 24
   hours (counted here, retries included) against the org's allocation (read from the header).
   A call is refused when ``used_by_us + 1 > max_share_of_daily_limit * limit``. This is what
   ``max_share_of_daily_limit`` promises: okrsync alone never uses more than that share.
2. **The org's headroom** — ``org_used / limit`` from the header: a call is refused while
   ``limit - org_used - 1 < org_reserve_share * limit``, i.e. when it would eat into the part of
   the allocation kept for the org's other users. Our share alone cannot protect the org if
   others already used most of it. The org's count is only trusted for
   :data:`ORG_INFO_TTL` seconds: after that one call is let through to read a fresh count.

Until the first answer the allocation is unknown and calls go through (that answer tells it).
The count of our calls is a sliding window in a bucket of the connection
(:meth:`DailyQuota.share_window`), which the core keeps in the store when replicas share one, so
that the share holds for all of them together; on a single node it lives in memory, and after a
restart it starts again from zero: the org guard (which reads Salesforce's own count) is what
still protects the org then.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from okrsync.errors import QuotaExhaustedError
from okrsync.sdk.pace import SlidingWindow

WINDOW = 86_400.0  # Salesforce's rolling 24 hours
UNKNOWN_ALLOCATION = 1_000_000_000  # a window that only counts, until an answer tells the limit
ORG_INFO_TTL = 3_600.0
_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int


def parse_limit_info(value: str | None) -> ApiUsage | None:
    """``api-usage=25/15000; api-bursts=1/750`` → ``ApiUsage(25, 15000)``; else ``None``."""
    if not value:
        return None
    match = _API_USAGE.search(value)
    if match is None:
        return None
    used, limit = int(match.group(1)), int(match.group(2))
    return ApiUsage(used, limit) if limit > 0 else None


class DailyQuota:
    """The two guards of one connection; ``claim()`` before each call, ``observe()`` after."""

    def __init__(
        self,
        *,
        max_share: float,
        org_reserve: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_share = max_share
        self.org_reserve = org_reserve
        self._clock = clock
        self._ours: deque[float] = deque()  # when each of our calls in the window was sent
        self.org: ApiUsage | None = None
        self._org_seen_at = -math.inf

    @property
    def used_by_us(self) -> int:
        self._forget_old(self._clock())
        return len(self._ours)

    def _forget_old(self, now: float) -> None:
        while self._ours and self._ours[0] <= now - WINDOW:
            self._ours.popleft()

    def check(self) -> None:
        """Raise :class:`QuotaExhaustedError` when one more call would break a guard, counting
        only this process's calls (the budget counts every replica's: :meth:`share_window`)."""
        now = self._clock()
        self._forget_old(now)
        org = self.org
        if org is None:
            return
        ours = len(self._ours)
        allowed = self.allowed()
        if allowed is not None and ours + 1 > allowed:
            resume = self._ours[0] + WINDOW if self._ours else now + WINDOW
            raise self.share_spent(ours, resume - now)
        self.check_org()

    def allowed(self) -> int | None:
        """Our calls allowed in 24 hours (``None`` until an answer told the allocation)."""
        if self.org is None:
            return None
        return math.floor(self.max_share * self.org.limit)

    def share_window(self) -> SlidingWindow | None:
        """The limit of our share as a sliding window over 24 hours; ``None`` when the share
        allows no call at all. Before the allocation is known the window only counts."""
        allowed = self.allowed()
        if allowed is None:
            return SlidingWindow(UNKNOWN_ALLOCATION, WINDOW)
        return SlidingWindow(allowed, WINDOW) if allowed >= 1 else None

    def share_spent(self, ours: int, wait: float) -> QuotaExhaustedError:
        """The pause when our share is spent: ``ours`` calls sent, a call free in ``wait`` s."""
        org = self.org
        allowed = self.allowed()
        told = f" (org allocation {org.limit}, org usage {org.used})" if org is not None else ""
        return QuotaExhaustedError(
            f"paused to stay within {self.max_share:.0%} of the org's daily API allocation: "
            f"this connection sent {ours} of its {allowed} allowed calls in the last 24 hours"
            f"{told}",
            resume_at=time.time() + wait,
        )

    def check_org(self) -> None:
        """Raise :class:`QuotaExhaustedError` when one more call would eat into the org's
        reserve, as Salesforce's own count (from the last answer's header) says."""
        now = self._clock()
        org = self.org
        if org is None:
            return
        if now - self._org_seen_at > ORG_INFO_TTL:
            return
        reserve = math.ceil(self.org_reserve * org.limit)
        if org.limit - org.used - 1 < reserve:
            raise QuotaExhaustedError(
                f"paused to leave the org's other users their API calls: the org has used "
                f"{org.used} of its {org.limit} daily calls, and the last {reserve} "
                f"({self.org_reserve:.0%}) are kept free for them",
                resume_at=self._org_seen_at + ORG_INFO_TTL,
            )

    def claim(self) -> None:
        """Check the guards, then count one call as sent by us."""
        self.check()
        self.record_sent()

    def record_sent(self) -> None:
        """Count one call as sent by this process (``used_by_us``)."""
        self._ours.append(self._clock())

    def observe(self, headers: httpx.Headers) -> float | None:
        """Read ``Sforce-Limit-Info`` (a budget header observer: it never asks for a hold)."""
        usage = parse_limit_info(headers.get("sforce-limit-info"))
        if usage is not None:
            self.org = usage
            self._org_seen_at = self._clock()
        return None
