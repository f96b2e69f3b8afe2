"""What a loaded config is made of, and the shape of the YAML document it is read from.

Two families live here. The *definitions* (``Config``, ``ObjectiveDef`` …) are what the rest of
okrsync uses: frozen, fully typed, every reference already checked. The *document models*
(``ConfigDocument`` …) describe the YAML as written; the loader takes its list of allowed keys
from them and the JSON Schema is generated from them, so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from okrsync.engine.expressions import Expression
from okrsync.engine.pacing import DeliveryPolicy
from okrsync.engine.plausibility import UNBOUNDED, Bounds
from okrsync.engine.progress import KRKind, TargetSpec
from okrsync.engine.schedule import Schedule
from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec
from okrsync.sdk.models import CycleWindow

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
DEFAULT_SCHEDULE = "every 1h"  # when neither the metric nor ``defaults.schedule`` gives one
DEFAULT_FETCH_DEADLINE = timedelta(seconds=90)
"""How long one connection's fetch may take when its ``fetch_deadline`` is not set: three times
the usual 30 s request timeout (a first attempt and retries), and below the default 120 s lease
on due metrics, so a replica never takes over metrics whose fetch is still running."""

# --- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleDef:
    id: str
    start: date
    end: date

    def window(self) -> CycleWindow:
        return CycleWindow(self.id, self.start, self.end)


@dataclass(frozen=True)
class MetricDef:
    name: str
    connection: str
    schedule: Schedule
    spec: QuerySpec  # an instance of the connection's connector ``query_model``
    line: int | None = None
    bounds: Bounds = UNBOUNDED  # ``min``/``max``: a reading outside them is the metric's error


DIGEST_PREFIX = "@"  # objective digest mirrors' keys start with "@<objective id>/"


@dataclass(frozen=True)
class MirrorDef:
    connection: str
    spec: MirrorSpec  # an instance of the connection's connector ``mirror_model``
    key: str  # stable: the same mirror in the same place keeps its key across restarts
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)  # pacing; not in the key

    @property
    def is_digest(self) -> bool:
        return self.key.startswith(DIGEST_PREFIX)

    @staticmethod
    def make_key(key_result_id: str, connection: str, spec: MirrorSpec) -> str:
        payload = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return f"{key_result_id}/{connection}/" + hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class KeyResultDef:
    id: str
    objective_id: str
    title: str
    metric: str | None
    value: Expression | None
    kind: KRKind
    target_spec: TargetSpec
    start: Decimal | None
    target: Decimal | None
    low: Decimal | None
    high: Decimal | None
    unit: str | None
    weight: Decimal
    stale_after: timedelta | None
    mirrors: tuple[MirrorDef, ...]
    line: int | None = None

    def metric_names(self) -> frozenset[str]:
        """The metrics this key result reads: its metric, or the names in its expression."""
        if self.metric is not None:
            return frozenset({self.metric})
        if self.value is not None:
            return frozenset(self.value.names)
        return frozenset()


@dataclass(frozen=True)
class ObjectiveDef:
    id: str
    title: str
    cycle: str
    owner: str | None
    parent: str | None
    weight: Decimal
    description: str | None
    key_results: tuple[KeyResultDef, ...]
    line: int | None = None
    mirrors: tuple[MirrorDef, ...] = ()  # digest mirrors: the whole objective in one message


@dataclass(frozen=True)
class Config:
    version: int
    source: Path | None
    connections: Mapping[str, ConnectionConfig]
    connection_types: Mapping[str, str]
    cycles: Mapping[str, CycleDef]
    metrics: Mapping[str, MetricDef]
    objectives: tuple[ObjectiveDef, ...]
    reference_secrets: tuple[str, ...] = ()  # values ``${…}`` brought into ``connections``
    fetch_deadlines: Mapping[str, timedelta] = field(default_factory=dict)  # set in the YAML

    def fetch_deadline(self, connection: str) -> timedelta:
        """How long a fetch of ``connection`` may take before it is abandoned as failed."""
        return self.fetch_deadlines.get(connection, DEFAULT_FETCH_DEADLINE)

    def key_results(self) -> list[KeyResultDef]:
        return [kr for objective in self.objectives for kr in objective.key_results]

    def key_result(self, id: str) -> KeyResultDef:
        for kr in self.key_results():
            if kr.id == id:
                return kr
        raise KeyError(id)

    def objective(self, id: str) -> ObjectiveDef:
        for objective in self.objectives:
            if objective.id == id:
                return objective
        raise KeyError(id)

    def secret_values(self) -> list[str]:
        """Every secret the config holds, longest first (so redaction replaces whole values)."""
        found: set[str] = set(self.reference_secrets)
        for connection in self.connections.values():
            found.update(connection.secret_values())
        return sorted((s for s in found if s), key=lambda s: (-len(s), s))


# --- document models: the YAML as written (key names, JSON Schema) -----------------------------

Identifier = Field(pattern=ID_PATTERN, min_length=1)
Number = float  # JSON Schema "number" includes integers
Duration = Field(default=None, pattern=DURATION_PATTERN, description="30s, 15m, 2h, 1d, 1h30m")


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefaultsDocument(_Document):
    """Values used where a metric or key result does not give its own."""

    schedule: str | None = Field(
        default=None, description="Default metric schedule: 'every 15m' or a cron expression."
    )
    stale_after: str | None = Duration


class CycleDocument(_Document):
    """A time box, such as a quarter."""

    id: str = Identifier
    start: date
    end: date


class ConnectionCommon(_Document):
    """The okrsync fields every connection has, beside ``type`` and its connector's fields."""

    fetch_deadline: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description="How long one pass may wait for this connection's answers before it records "
        "them as failed (no answer within …) and moves on; default 90s. e.g. 30s, 5m.",
    )


class MetricCommon(_Document):
    """The fields every metric has; the others are its connector's query fields."""

    connection: str = Field(description="Name of the connection (a source) that answers it.")
    schedule: str | None = Field(
        default=None, description="'every 15m' or a cron expression; default defaults.schedule."
    )
    min: Decimal | None = Field(
        default=None,
        description="Lowest plausible reading; a lower one is the metric's error, not its value.",
    )
    max: Decimal | None = Field(
        default=None,
        description="Highest plausible reading; a higher one is the metric's error, not its value.",
    )


class QuietHoursDocument(_Document):
    """A daily window in which nothing is pushed; pushes wait for its end."""

    start: str = Field(description="Local time, e.g. 22:00.")
    end: str = Field(description="Local time, e.g. 07:00 (may be on the next day).")
    timezone: str = Field(default="UTC", description="IANA zone, e.g. Europe/Berlin.")


class MirrorCommon(_Document):
    """The fields every mirror has; the others are its connector's mirror fields."""

    connection: str = Field(description="Name of the connection (a sink) to push to.")
    min_interval: str | None = Field(
        default=None, description="Push at most this often, e.g. 10m; later changes wait."
    )
    min_change: Decimal | None = Field(
        default=None,
        description="Skip pushes that move progress less than this (0.05 = 5 points) "
        "without changing status.",
    )
    quiet_hours: QuietHoursDocument | None = Field(
        default=None, description="Pushes due in this daily window wait for its end."
    )
    schedule: str | None = Field(
        default=None,
        description="Also push on this cadence, changed or not ('every 1d', '0 9 * * 1').",
    )
    on_change: bool = Field(
        default=True, description="Push when the value changes; false: only on the schedule."
    )
    announce_stale: bool = Field(
        default=True,
        description="Push when the key result's value passes its stale_after (and again when a "
        "source confirms it), so the mirror says the number is old; false: stay silent.",
    )


class KeyResultDocument(_Document):
    """A measurable target, on one metric or on an expression of metrics."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["metric"]}, {"required": ["value"]}]},
    )

    id: str = Identifier
    title: str
    metric: str | None = Field(default=None, description="Name of the metric it follows.")
    value: str | None = Field(default=None, description="Expression of metrics: 'a / b * 100'.")
    kind: KRKind
    start: Number | None = None
    target: Number | None = None
    low: Number | None = None
    high: Number | None = None
    unit: str | None = None
    weight: Number = Field(default=1, gt=0)
    stale_after: str | None = Duration
    mirrors: list[dict[str, Any]] = Field(default_factory=list)


class ObjectiveDocument(_Document):
    """A goal that groups key results."""

    id: str = Identifier
    title: str
    cycle: str
    owner: str | None = None
    parent: str | None = Field(default=None, description="Id of the objective this one serves.")
    weight: Number = Field(default=1, gt=0)
    description: str | None = None
    key_results: list[KeyResultDocument] = Field(default_factory=list)
    mirrors: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Digest mirrors: the objective and all its key results in one message.",
    )


class ConfigDocument(_Document):
    """An okrsync configuration file."""

    version: Literal[1]
    defaults: DefaultsDocument | None = None
    connections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cycles: list[CycleDocument] = Field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    objectives: list[ObjectiveDocument] = Field(default_factory=list)


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a document model accepts, in declaration order."""
    return list(model.model_fields)
