"""Reading HubSpot's burst-limit headers: the connection's budget observer for them.

Calls other than search carry ``X-HubSpot-RateLimit-Remaining`` (calls left in the current
window, ``-Interval-Milliseconds`` long) and ``-Secondly-Remaining``. HubSpot does not say when
its window resets, so a spent window holds the connection for one whole window.
"""

from __future__ import annotations

import httpx

from okrsync.sdk.budget import header_number


def burst_window_hold(headers: httpx.Headers) -> float | None:
    """Seconds to hold the connection when the burst window (or the second) is spent."""
    if header_number(headers.get("x-hubspot-ratelimit-remaining")) == 0:
        interval_ms = header_number(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
        return interval_ms / 1000.0 if interval_ms is not None else None
    if header_number(headers.get("x-hubspot-ratelimit-secondly-remaining")) == 0:
        return 1.0
    return None
