"""What a loaded config is made of, and the shape of the YAML document it is read from.

Two families live here. The *definitions* (``Config``, ``ObjectiveDef`` …) are what the rest of
okrsync uses: frozen, fully typed, every reference already checked. The *document models*
(``ConfigDocument`` …) describe the YAML as written and are the single source of its fields: the
loader validates sections with them (their value types, in :mod:`.fields`, word every refusal),
and the JSON Schema is generated from them, so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from okrsync.config import fields
from okrsync.config.check_ins import DEFAULT_CHECK_INS, CheckInPolicy, CheckInsDocument, Grading
from okrsync.config.fields import (
    CycleId,
    Day,
    ExpressionText,
    Fraction,
    KeyResultId,
    Kind,
    NonEmptyText,
    Number,
    ObjectiveId,
    RequiredText,
    ScheduleText,
    Text,
    Toggle,
    Weight,
    listed,
    refuse,
)
from okrsync.config.work import WorkDef, Works
from okrsync.domain.cycles import DEFAULT_CLOSE_AFTER, Every, Series, Span
from okrsync.domain.expressions import Expression
from okrsync.domain.grading import DEFAULT_GRADING, GradingRule
from okrsync.domain.pacing import DeliveryPolicy, QuietHours
from okrsync.domain.plausibility import UNBOUNDED, Bounds
from okrsync.domain.progress import KRKind, TargetSpec
from okrsync.domain.schedule import Schedule
from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec
from okrsync.sdk.models import CycleWindow

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
    close_after: timedelta = DEFAULT_CLOSE_AFTER  # the grace period after ``end`` (closing)
    series: str | None = None  # the id template of the series it was generated from

    def window(self) -> CycleWindow:
        return CycleWindow(self.id, self.start, self.end)

    def span(self) -> Span:
        return Span(self.id, self.start, self.end)


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
    work: tuple[WorkDef, ...] = ()  # the tracker queries listing the work behind it
    stretch: Decimal | None = None
    grading: GradingRule = DEFAULT_GRADING
    check_ins: CheckInPolicy = DEFAULT_CHECK_INS
    decimals: int | None = None  # digits people read; None: the unit's (okrsync.domain.numbers)

    @property
    def manual(self) -> bool:
        """A manual key result: no metric, no expression; check-ins alone set its value."""
        return self.metric is None and self.value is None

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
    work: tuple[WorkDef, ...] = ()  # the tracker queries listing the work behind it
    follows_series: bool = False  # ``cycle: current``: its cycle is the series' current one


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
    followed_series: Series | None = None  # the series ``cycle: current`` follows, if any

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

_DURATION_HELP = "30s, 15m, 2h, 1d, 1h30m"


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class DefaultsDocument(_Document):
    """Values used where a metric or key result does not give its own."""

    schedule: ScheduleText = Field(
        default=None, description="Default metric schedule: 'every 15m' or a cron expression."
    )
    stale_after: fields.Duration = Field(default=None, description=_DURATION_HELP)
    grading: Grading = Field(
        default=None, description="How key results score: stretch_0.7 (default) or progress."
    )
    close_after: fields.Duration = Field(
        default=None,
        description="How long a cycle stays 'closing' after its end before it closes; default 7d.",
    )


_CLOSE_AFTER_HELP = "Grace period after the end (values still update), then closed; default 7d."


class CycleDocument(_Document):
    """A time box, such as a quarter."""

    id: CycleId
    start: Day
    end: Day
    close_after: fields.Duration = Field(default=None, description=_CLOSE_AFTER_HELP)


class CycleSeriesDocument(_Document):
    """A generated series of cycles: one every month, quarter or half-year from a date on."""

    every: Every = Field(description="How long each cycle lasts: month, quarter or half.")
    from_: Day = Field(alias="from", description="First day of the first cycle.")
    id: NonEmptyText = Field(
        description="Id template, e.g. '{year}-Q{quarter}': {year}, {quarter}, {half}, "
        "{month} (01-12)."
    )
    close_after: fields.Duration = Field(default=None, description=_CLOSE_AFTER_HELP)


CycleList = Annotated[list[CycleDocument | CycleSeriesDocument], listed("cycles")]


class ConnectionCommon(_Document):
    """The okrsync fields every connection has, beside ``type`` and its connector's fields."""

    fetch_deadline: fields.Duration = Field(
        default=None,
        description="How long one pass may wait for this connection's answers before it records "
        "them as failed (no answer within …) and moves on; default 90s. e.g. 30s, 5m.",
    )


class MetricCommon(_Document):
    """The fields every metric has; the others are its connector's query fields."""

    connection: RequiredText = Field(
        description="Name of the connection (a source) that answers it."
    )
    schedule: ScheduleText = Field(
        default=None, description="'every 15m' or a cron expression; default defaults.schedule."
    )
    min: Number = Field(
        default=None,
        description="Lowest plausible reading; a lower one is the metric's error, not its value.",
    )
    max: Number = Field(
        default=None,
        description="Highest plausible reading; a higher one is the metric's error, not its value.",
    )


MetricCommonTable = dict[str, MetricCommon]
"""Every metric's own fields by its name (its connector's query fields taken out)."""


class QuietHoursDocument(_Document):
    """A daily window in which nothing is pushed; pushes wait for its end."""

    start: str = Field(description="Local time, e.g. 22:00.")
    end: str = Field(description="Local time, e.g. 07:00 (may be on the next day).")
    timezone: str = Field(default="UTC", description="IANA zone, e.g. Europe/Berlin.")
    _window: QuietHours | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse(self) -> QuietHoursDocument:
        try:
            self._window = QuietHours.parse(self.start, self.end, self.timezone)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        return self

    @property
    def window(self) -> QuietHours:
        assert self._window is not None  # set by every successful validation
        return self._window


class MirrorCommon(_Document):
    """The fields every mirror has; the others are its connector's mirror fields."""

    connection: RequiredText = Field(description="Name of the connection (a sink) to push to.")
    min_interval: fields.Duration = Field(
        default=None, description="Push at most this often, e.g. 10m; later changes wait."
    )
    min_change: Fraction = Field(
        default=None,
        description="Skip pushes that move progress less than this (0.05 = 5 points) "
        "without changing status.",
    )
    quiet_hours: QuietHoursDocument | None = Field(
        default=None, description="Pushes due in this daily window wait for its end."
    )
    schedule: ScheduleText = Field(
        default=None,
        description="Also push on this cadence, changed or not ('every 1d', '0 9 * * 1').",
    )
    on_change: Toggle = Field(
        default=True, description="Push when the value changes; false: only on the schedule."
    )
    announce_stale: Toggle = Field(
        default=True,
        description="Push when the key result's value passes its stale_after (and again when a "
        "source confirms it), so the mirror says the number is old; false: stay silent.",
    )

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            self.min_interval,
            self.min_change,
            self.quiet_hours.window if self.quiet_hours is not None else None,
            on_change=self.on_change,
            schedule=self.schedule,
            announce_stale=self.announce_stale,
        )


Mirrors = Annotated[list[dict[str, Any]], listed("mirrors")]
"""Mirrors as written: each checked by :class:`MirrorCommon` and its connector's mirror model."""


class KeyResultDocument(_Document):
    """A measurable target, on one metric or on an expression of metrics, or (neither) manual."""

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        json_schema_extra={"not": {"required": ["metric", "value"]}},  # no metric or value: manual
    )

    id: KeyResultId
    title: NonEmptyText
    metric: Text = Field(default=None, description="Name of the metric it follows.")
    value: ExpressionText = Field(default=None, description="Expression of metrics: 'a / b * 100'.")
    kind: Kind
    start: Number = None
    target: Number = None
    low: Number = None
    high: Number = None
    unit: Text = None
    weight: Weight
    stale_after: fields.Duration = Field(default=None, description=_DURATION_HELP)
    mirrors: Mirrors = Field(default_factory=list)
    work: Works = Field(
        default_factory=list,
        description="Tracker queries listing the issues, PRs and epics behind this key result.",
    )
    stretch: Number = Field(
        default=None,
        description="Beyond the target (increase, decrease): scores 1.0; the target scores 0.7.",
    )
    grading: Grading = Field(
        default=None, description="stretch_0.7 or progress; default defaults.grading."
    )
    check_ins: CheckInsDocument | None = Field(
        default=None,
        description="When and where check-ins are asked for, and whether a manual value counts.",
    )
    decimals: int | None = Field(
        default=None,
        ge=0,
        le=6,
        description="Digits shown after the point (default: 1 for '%', else 0).",
    )


class ObjectiveDocument(_Document):
    """A goal that groups key results."""

    id: ObjectiveId
    title: NonEmptyText
    cycle: RequiredText
    owner: Text = None
    parent: Text = Field(default=None, description="Id of the objective this one serves.")
    weight: Weight
    description: Text = None
    key_results: Annotated[list[KeyResultDocument], listed("key_results")] = Field(
        default_factory=list
    )
    mirrors: Mirrors = Field(
        default_factory=list,
        description="Digest mirrors: the objective and all its key results in one message.",
    )
    work: Works = Field(
        default_factory=list,
        description="Tracker queries listing the issues, PRs and epics behind this objective.",
    )


ObjectiveList = Annotated[list[ObjectiveDocument], listed("objectives")]


class ConfigDocument(_Document):
    """An okrsync configuration file."""

    version: Literal[1]
    defaults: DefaultsDocument | None = None
    connections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cycles: CycleList = Field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    objectives: ObjectiveList = Field(default_factory=list)


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a document model accepts, in declaration order."""
    return list(model.model_fields)
