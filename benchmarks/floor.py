"""The refresh-time floor: what latency, allowed concurrency and the vendors' limits permit.

Connections are fetched concurrently, then the mirrors are pushed: floor = slowest connection's
floor + the Slack floor. A connection's floor is the larger of (its lower-bound requests in waves
of its allowed concurrency, each wave one latency) and (requests over its rate limit); a token
request comes first where the API needs one.
"""

from __future__ import annotations

import math

# (allowed concurrency = the connector's default, vendor rate limit per second or None, token?)
LIMITS: dict[str, tuple[int, float | None, bool]] = {
    "jira": (4, None, False),  # Jira Cloud publishes no fixed per-second limit for reads
    "salesforce": (4, None, True),  # a daily allocation, not a rate
    "ga4": (4, None, True),  # GA4 allows 10 concurrent; the connector's default is 4
    "hubspot": (2, 5.0, False),  # search: 5 per second per portal
}
CONFIGURED_PACE = {"jira": 40.0}  # the Jira connection's own requests_per_second default
SLACK_BURST_PER_CHANNEL = 5  # chat.postMessage: 1/s per channel, bursts of 5


def connection_floor(name: str, requests: int, latency: float, *, paced: bool = False) -> float:
    concurrency, rate, token = LIMITS[name]
    data = requests - (1 if token and requests else 0)
    waves = math.ceil(data / concurrency) * latency + (latency if token and requests else 0)
    rated = (data - 1) / rate if rate and data > 1 else 0.0
    pace = CONFIGURED_PACE.get(name) if paced else None
    paced_floor = (data - 1) / pace if pace and data > 1 else 0.0
    return max(waves, rated, paced_floor)


def slack_floor(posts: int, channels: int, latency: float) -> float:
    if posts == 0:
        return 0.0
    per_channel = math.ceil(posts / channels)
    return latency + max(0, per_channel - SLACK_BURST_PER_CHANNEL) * 1.0


def refresh_floor(
    lower: dict[str, int], latency: float, channels: int, *, paced: bool = False
) -> float:
    fetch = max(connection_floor(n, lower[n], latency, paced=paced) for n in LIMITS)
    return fetch + slack_floor(lower.get("slack", 0), channels, latency)
