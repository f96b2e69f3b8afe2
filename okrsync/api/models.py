"""The JSON API's shapes. Numbers that must stay exact (values, progress) are decimal strings."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

MAX_ABS_VALUE = Decimal("1e18")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Model):
    error: str = Field(description="What went wrong, in one sentence.")
    detail: Any = Field(default=None, description="More about it, when there is more.")


class Cycle(Model):
    id: str
    start: date
    end: date
    elapsed: str = Field(description="Share of the cycle elapsed now, 0-1, as a decimal string.")


class CycleList(Model):
    cycles: list[Cycle]


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


class KeyResultList(Model):
    key_results: list[KeyResult]


class Objective(Model):
    id: str
    title: str
    cycle: str
    owner: str | None
    progress: str | None
    status: str
    elapsed: str
    key_results: list[KeyResult]


class ObjectiveList(Model):
    objectives: list[Objective]


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


class MeasurementList(Model):
    key_result: str
    measurements: list[Measurement]


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


class RunList(Model):
    runs: list[Run]


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


class DeliveryList(Model):
    deliveries: list[Delivery]


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


class ConnectionList(Model):
    connections: list[Connection]


DECIMAL_TEXT = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$")


def _check_value(raw: Any) -> Any:
    """Strings must be plain decimals; numbers must be in range. Pydantic then makes a Decimal."""
    if isinstance(raw, bool):
        raise ValueError("the value must be a number")
    if isinstance(raw, str) and not DECIMAL_TEXT.match(raw):
        raise ValueError("the value must be a plain decimal such as '1250.5'")
    if isinstance(raw, int | float) and not (-MAX_ABS_VALUE < Decimal(str(raw)) < MAX_ABS_VALUE):
        raise ValueError("the value is out of range (|value| < 1e18)")
    return raw


CheckInValue = Annotated[
    Decimal,
    BeforeValidator(_check_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": -1e18, "exclusiveMaximum": 1e18},
                {"type": "string", "pattern": DECIMAL_TEXT.pattern},
            ],
            "description": "The observed value: a number, or a decimal string to keep it exact.",
        }
    ),
]


class CheckIn(Model):
    """A value reported by a person, recorded with origin ``manual``."""

    value: CheckInValue
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("the value must be a finite number")
        return value


class CheckInResult(Model):
    key_result: str
    measurement: Measurement
    deliveries_queued: int


class SyncRequest(Model):
    key_results: list[str] | None = Field(
        default=None, description="Only these key results; all of them when absent."
    )


class SyncAccepted(Model):
    status: Literal["queued", "finished", "failed"] = Field(
        description="finished when the run ended before the answer was sent."
    )
    run_id: str | None
    key_results: list[str] | None
    queries: int | None = None
    api_calls: int | None = None
    changed: int | None = None
    delivered: int | None = None
    errors: list[str] = Field(default_factory=list)
