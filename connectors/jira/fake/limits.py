"""Jira Cloud's burst rate limit, as the fake enforces and announces it.

What Atlassian documents for API-token traffic (developer.atlassian.com/cloud/jira/platform/
rate-limiting, "Request rate limits (per-second)"; the points-based hourly quota applies to
Forge, Connect and OAuth apps only): a per-second limit scoped to one tenant, one endpoint and
one HTTP method — 100 requests a second for GET and POST, 50 for PUT and DELETE — with a burst
buffer that tolerates short spikes. Over it, Jira answers **429** with ``Retry-After`` (whole
seconds), ``X-RateLimit-Reset`` (the request time plus ``Retry-After``, as ``yyyy-MM-ddTHH:mmZ``),
``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``RateLimit-Reason: jira-burst-based``; the
429 body is not specified. A successful answer carries ``X-RateLimit-NearLimit: true`` when less
than 20% of the budget remains.

Modelled as a token bucket per ``(endpoint, method)`` refilled at the documented rate and holding
one second of it (the size of the burst buffer is not published). The rates are a mapping so a
test can lower them while the fake runs, as Jira does when a site is under load.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

BURST_REASON = "jira-burst-based"
NEAR_LIMIT_SHARE = 0.2  # X-RateLimit-NearLimit: true below this share of the budget

DOCUMENTED_BURST_RATES: dict[str, float] = {
    "GET": 100.0,
    "POST": 100.0,
    "PUT": 50.0,
    "DELETE": 50.0,
}
"""Requests per second per tenant, endpoint and method (Atlassian's burst rate limits)."""


def reset_stamp(moment: float) -> str:
    """``X-RateLimit-Reset`` as Jira writes it: ISO 8601 to the minute, UTC (``…THH:mmZ``)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class _Bucket:
    tokens: float
    refilled_at: float


@dataclass
class Verdict:
    """The limiter's answer to one request: go (with headers to add) or 429 (with its headers)."""

    allowed: bool
    headers: dict[str, str]


@dataclass
class BurstLimiter:
    """Token buckets per endpoint and method; thread-safe (the fake may serve from threads)."""

    rates: MutableMapping[str, float] = field(default_factory=lambda: dict(DOCUMENTED_BURST_RATES))
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, endpoint: str, method: str) -> Verdict | None:
        """Take one token for ``method endpoint``; ``None`` when the method is not limited."""
        rate = self.rates.get(method.upper())
        if rate is None or rate <= 0:
            return None
        capacity = max(1.0, rate)  # one second's worth
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault((endpoint, method.upper()), _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.refilled_at) * rate)
            bucket.refilled_at = now
            limit = str(math.floor(capacity))
            if bucket.tokens < 1.0:
                retry_after = max(1, math.ceil((1.0 - bucket.tokens) / rate))
                return Verdict(
                    False,
                    {
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Reset": reset_stamp(self.wall_clock() + retry_after),
                        "X-RateLimit-Limit": limit,
                        "X-RateLimit-Remaining": "0",
                        "RateLimit-Reason": BURST_REASON,
                    },
                )
            bucket.tokens -= 1.0
            remaining = math.floor(bucket.tokens)
        headers = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": str(remaining)}
        if remaining < NEAR_LIMIT_SHARE * capacity:
            headers["X-RateLimit-NearLimit"] = "true"
        return Verdict(True, headers)
