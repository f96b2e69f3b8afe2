"""Slack's published limits for ``conversations.history``, by how the app is distributed.

docs.slack.dev (the method's page and "Rate limits"): internal customer-built apps and apps
approved for the Slack Marketplace get Tier 3 (50+ requests a minute, per workspace and app;
``limit`` defaults to 100, at most 999). Since May 29, 2025, apps commercially distributed outside
the Marketplace get 1 request a minute, and ``limit``'s default and maximum are both 15 (new
installations from that date; existing installations from March 3, 2026). The same limits apply
to ``conversations.replies``.

A self-hosted okrsync is an internal app: its own workspace's admin creates it and installs it
there, which is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Distribution = Literal["internal", "marketplace", "distributed"]
DEFAULT_DISTRIBUTION: Distribution = "internal"


@dataclass(frozen=True)
class HistoryLimits:
    """``calls`` requests in any ``seconds``; ``max_page`` messages at most per answer (what a
    larger ``limit`` is cut to) and ``default_page`` when no ``limit`` is sent."""

    calls: int
    seconds: float
    max_page: int
    default_page: int

    @property
    def pace(self) -> tuple[int, float]:
        return (self.calls, self.seconds)


TIER_3 = HistoryLimits(calls=50, seconds=60.0, max_page=999, default_page=100)
COMMERCIALLY_DISTRIBUTED = HistoryLimits(calls=1, seconds=60.0, max_page=15, default_page=15)

HISTORY_LIMITS: Mapping[Distribution, HistoryLimits] = MappingProxyType(
    {"internal": TIER_3, "marketplace": TIER_3, "distributed": COMMERCIALLY_DISTRIBUTED}
)


def history_limits(distribution: Distribution) -> HistoryLimits:
    return HISTORY_LIMITS[distribution]


def history_page(distribution: Distribution, wanted: int) -> int:
    """The page size to ask for: ``wanted``, within what Slack serves to this kind of app."""
    return max(1, min(wanted, history_limits(distribution).max_page))
