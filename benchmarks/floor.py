"""The refresh-time floor: what latency and the vendors' documented limits permit.

Connections are fetched concurrently, then the mirrors are pushed: floor = the slowest
connection's floor + the Slack floor. A connection first gets what it must set up (a token, a
catalog: one wave of one latency) and then asks its data requests in waves of the concurrency
the vendor documents (all at once where none is published), each wave one latency, or, where
the vendor documents a rate, no faster than that many requests in any one-second window. Only
requests the refresh needs count (``Workload.needed``: a warm refresh sets nothing up again).
The limits are the vendors' own published figures, never okrsync's defaults; :data:`LIMITS`
says where each comes from, and the report prints it. The floor counts the network only: no
CPU, no store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.workload import SLACK_CHANNELS, Needed, Workload


@dataclass(frozen=True)
class VendorLimit:
    """What a vendor documents about how fast one client may ask it."""

    concurrency: int | None  # requests in flight at once; None: no limit published
    per_second: float | None  # requests in any one-second window; None: no rate published
    documented: str  # the limit in the vendor's words, as the floor reads it
    source: str  # where it is documented

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"{self.concurrency} in flight")
        if self.per_second is not None:
            parts.append(f"{self.per_second:g} per second")
        return ", ".join(parts) or "no limit on a refresh's requests"


LIMITS: dict[str, VendorLimit] = {
    "jira": VendorLimit(
        None,
        None,
        "API-token traffic is governed by burst limits per tenant and endpoint (a token bucket "
        "whose size Atlassian does not publish); the points-based hourly quotas apply to apps "
        "only",
        "https://developer.atlassian.com/cloud/jira/platform/rate-limiting",
    ),
    "salesforce": VendorLimit(
        None,
        None,
        "no limit on concurrent requests shorter than 20 s (25 long-running ones in a "
        "production org); a daily allocation, not a rate",
        "https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/"
        "guide/salesforce-app-limits-platform-api.html",
    ),
    "ga4": VendorLimit(
        10,
        None,
        "a standard property can send up to 10 concurrent requests (tokens per hour and day "
        "are far from reached by these reports)",
        "https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/"
        "PropertyQuota",
    ),
    "hubspot": VendorLimit(
        None,
        5.0,
        "CRM search: 5 requests per second per account (an older changelog said 4 per token; "
        "the floor takes the current, faster figure)",
        "https://developers.hubspot.com/docs/api/crm/search (Limitations); "
        "/work/shared/contracts/API-NOTES.md",
    ),
}
"""The data sources' limits. HubSpot's rate governs its searches, not the pipelines read."""

SLACK_PER_CHANNEL_PER_SECOND = 1.0
SLACK_BURST_PER_CHANNEL = 5
SLACK_LIMIT = VendorLimit(
    None,
    SLACK_PER_CHANNEL_PER_SECOND,
    "chat.postMessage: 1 message per second per channel, short bursts allowed (their size is "
    f"not published: the floor lets a channel take a burst of {SLACK_BURST_PER_CHANNEL}, the "
    "Slack fake's allowance, then 1 per second)",
    "https://api.slack.com/methods/chat.postMessage#rate_limiting; "
    "/work/shared/contracts/API-NOTES.md",
)


def connection_floor(name: str, needed: Needed, latency: float) -> float:
    """Seconds one source's requests take at best under its documented limits."""
    limit = LIMITS[name]
    setup = latency if needed.setup else 0.0
    if needed.data == 0:
        return setup
    waves = math.ceil(needed.data / limit.concurrency) if limit.concurrency else 1
    fetch = waves * latency
    if limit.per_second:
        # at most ``per_second`` requests start in any one-second window: the last one starts
        # (ceil(n / rate) - 1) seconds after the first
        fetch = max(fetch, (math.ceil(needed.data / limit.per_second) - 1) * 1.0 + latency)
    return setup + fetch


def slack_floor(posts: int, channels: int, latency: float) -> float:
    """The pushes, spread evenly over ``channels``: a burst per channel, then 1 per second."""
    if posts == 0:
        return 0.0
    per_channel = math.ceil(posts / channels)
    extra = max(0, per_channel - SLACK_BURST_PER_CHANNEL)
    return latency + extra / SLACK_PER_CHANNEL_PER_SECOND


def refresh_floor(needed: dict[str, Needed], latency: float, channels: int) -> float:
    fetch = max(connection_floor(name, needed[name], latency) for name in LIMITS)
    return fetch + slack_floor(needed["slack"].data, channels, latency)


def floor_model(workload: Workload, latency: float) -> dict[str, Any]:
    """The bounds and floors of one size, as ``results.json`` keeps them beside the figures."""
    channels = len(SLACK_CHANNELS)
    cold, warm = workload.needed(), workload.needed(warm=True)
    return {
        "lower_bound": workload.lower_bound(),
        "lower_bound_warm": workload.lower_bound(warm=True),
        "floor": {
            "cold": refresh_floor(cold, latency, channels),
            "warm": refresh_floor(warm, latency, channels),
        },
    }


def limits_used() -> dict[str, dict[str, object]]:
    """Every limit the floor reads, with its source, for the results and the report."""
    every = {**LIMITS, "slack": SLACK_LIMIT}
    return {
        name: {
            "concurrency": limit.concurrency,
            "per_second": limit.per_second,
            "documented": limit.documented,
            "source": limit.source,
        }
        for name, limit in every.items()
    }
