"""The states a sync run, a delivery and a connection's health can be in. Pure.

Each is a :class:`~enum.StrEnum`, so a member equals its stored text (``DeliveryStatus.DONE ==
"done"``): the store's columns stay plain strings and rows written before these enums read the
same. A key result's own status (on track, at risk …) is :class:`okrsync.sdk.models.Status`.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A sync run: running until it ends, then ok, or partial when some part of it failed."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"


class DeliveryStatus(StrEnum):
    """An outbox delivery: waiting (or retrying), delivered, given up, or replaced by a newer."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class ConnectionStatus(StrEnum):
    """A connection's health as of its last pass or push."""

    UNKNOWN = "unknown"  # never asked yet
    OK = "ok"
    PARTIAL = "partial"  # answered, but some of its queries failed
    FAILING = "failing"
    CREDENTIALS_REJECTED = "credentials_rejected"
    PAUSED_QUOTA = "paused_quota"
