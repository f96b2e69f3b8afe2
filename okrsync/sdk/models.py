"""The typed values that cross the boundary between the core and a connector."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from okrsync.errors import ConnectorError
from okrsync.sdk.work_summary import WorkSummary

SpecT = TypeVar("SpecT", bound=BaseModel)


class Status(StrEnum):
    """Where a key result stands against the pace its cycle asks for."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class CycleWindow:
    """The cycle a query is asked for; its dates are bound as query parameters."""

    id: str
    start: date
    end: date

    def params(self) -> dict[str, Any]:
        return {"cycle_id": self.id, "cycle_start": self.start, "cycle_end": self.end}


@dataclass(frozen=True)
class Query(Generic[SpecT]):
    """One question for a source: the metric's connector-specific spec plus the cycle it is for.

    ``key`` identifies the question: two metrics (or two key results) asking the very same thing of
    the same connection share a key and are fetched once per tick.
    """

    key: str
    connection: str
    metrics: tuple[str, ...]
    spec: SpecT
    cycle: CycleWindow

    @staticmethod
    def make_key(connection: str, spec: BaseModel, cycle: CycleWindow) -> str:
        payload = json.dumps(
            [connection, spec.model_dump(mode="json"), cycle.id, str(cycle.start), str(cycle.end)],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    @property
    def subject(self) -> str:
        """How error messages name this query: after the metric(s) that asked it."""
        names = ", ".join(self.metrics)
        return f"metric {names!r}" if len(self.metrics) == 1 else f"metrics {names}"


def digest(raw: bytes | str) -> str:
    """Digest of a raw vendor answer, kept as provenance without keeping the answer itself."""
    data = raw.encode() if isinstance(raw, str) else raw
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Reading:
    """What a source answered to one query: a number, or the error that prevented one."""

    key: str
    value: Decimal | None
    query_text: str
    fetched_at: datetime
    raw_digest: str = ""
    error: ConnectorError | None = None
    api_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


class KeyResultUpdate(BaseModel):
    """The state of one key result as a mirror receives it."""

    model_config = ConfigDict(frozen=True)

    objective_id: str
    objective_title: str
    key_result_id: str
    key_result_title: str
    cycle_id: str
    kind: str
    value: Decimal | None
    start: Decimal | None
    target: Decimal | None
    unit: str | None
    progress: Decimal | None
    progress_display: Decimal | None
    status: Status
    observed_at: datetime
    idempotency_key: str
    # Staleness: no source has confirmed the value within the key result's ``stale_after``.
    # A sink should say so beside the number ("stale: last confirmed 3 h ago").
    stale: bool = False
    checked_at: datetime | None = None  # the last time a source confirmed ``value``
    # The cycle closed: this is the key result's frozen final state, sent once per mirror.
    final: bool = False
    # the linked work items (issue 15): counts by state and those done since the last push;
    # None for a key result without work (okrsync.sdk.work_summary)
    work: WorkSummary | None = None
    confidence: int | None = None  # the latest check-in's confidence, 1 to 10
    score: Decimal | None = None  # 0.0 to 1.0 (target 0.7 with a stretch); see grading


class ObjectiveUpdate(BaseModel):
    """An objective's state with all its key results, for digest mirrors (one message each)."""

    model_config = ConfigDict(frozen=True)

    objective_id: str
    objective_title: str
    cycle_id: str
    owner: str | None
    progress: Decimal | None  # weighted roll-up of the key results' clamped progress
    status: Status
    observed_at: datetime
    idempotency_key: str
    key_results: tuple[KeyResultUpdate, ...]
    score: Decimal | None = None  # weighted mean of the key results' scores


@dataclass(frozen=True)
class PushResult:
    """What a sink reports back: the external reference (message ts, comment id) to edit next."""

    ref: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def as_decimal(value: object) -> Decimal:
    """A vendor's number as an exact Decimal (floats go through their shortest repr)."""
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        return Decimal(value.strip())
    raise TypeError(f"not a number: {value!r}")
