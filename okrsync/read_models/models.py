"""Cycles, key results, objectives, measurements, runs, deliveries and connections as answers.

Numbers that must stay exact (values, progress) are decimal strings; times are ISO 8601 in UTC
(pydantic writes ``Z``). The API lists them in pages (:mod:`okrsync.api.models`); the CLI prints
them with ``--json``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cycle(Model):
    id: str
    start: date
    end: date
    elapsed: str = Field(description="Share of the cycle elapsed now, 0-1, as a decimal string.")
    state: str = Field(description="upcoming, active, closing or closed, as of now.")
    closed_at: datetime | None = Field(
        description="When it was closed in the store (by the calendar or by command), or null."
    )


class KeyResult(Model):
    id: str
    objective: str
    title: str
    kind: str
    unit: str | None
    value: str | None = Field(description="Current value (exact decimal string), or null.")
    start: str | None
    target: str | None
    progress: str | None = Field(description="Unclamped: 1 = target reached, 1.3 = 130%.")
    status: str = Field(description="on_track, at_risk, off_track or no_data, as of now.")
    stale: bool
    observed_at: datetime | None
    checked_at: datetime | None
    last_error: str | None
    confidence: int | None = Field(
        default=None, description="The latest check-in's confidence, 1 to 10, or null."
    )
    score: str | None = Field(
        default=None,
        description="Grade 0-1 (decimal string): with a stretch, target 0.7 and stretch 1.0.",
    )


class Objective(Model):
    id: str
    title: str
    cycle: str
    owner: str | None
    progress: str | None
    status: str
    elapsed: str
    key_results: list[KeyResult]
    score: str | None = Field(
        default=None, description="Weighted mean of its key results' scores, or null."
    )


class Measurement(Model):
    id: int | None
    value: str | None
    progress: str | None
    status: str
    observed_at: datetime
    run_id: str | None
    origin: str = Field(description="auto (a source) or manual (a check-in).")
    note: str | None
    provenance: list[dict[str, Any]]
    confidence: int | None = Field(default=None, description="A check-in's confidence, 1-10.")
    author: str | None = Field(default=None, description="Who checked in (origin manual).")


class Run(Model):
    id: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    queries: int
    api_calls: int
    changed: int
    errors: int
    instance: str | None
    detail: dict[str, Any]


class Delivery(Model):
    id: int
    mirror: str
    key_result: str | None
    objective: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class Connection(Model):
    name: str
    type: str
    status: str = Field(
        description="unknown, ok, partial, failing, credentials_rejected or paused_quota."
    )
    consecutive_failures: int
    last_ok_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    paused_until: datetime | None


class KeyResultHistory(Model):
    """``okrsync history --json``: a key result's recorded values, oldest first."""

    key_result: str
    measurements: list[Measurement]


class Explanation(Model):
    """``okrsync explain --json``: where a key result's current value came from."""

    key_result: str
    title: str
    value: str | None
    expression: str | None
    metric: str | None
    checked_at: datetime | None
    last_error: str | None
    measurement: Measurement | None = Field(description="The current value's measurement.")
    run: Run | None = Field(
        description="The run that recorded it; null when none did (a check-in)."
    )
