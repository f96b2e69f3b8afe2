"""How a key result is checked in on: the ``check_ins:`` mapping, its policy and grading.

``check_ins`` on a key result says how often its owner is asked (``every``: a schedule), where
the reminder goes (``remind: {connection, channel}``; sent by the Slack reminders) and, for a
key result fed by a metric, whether a value checked in by hand counts (``manual_value``):

``until_source_changes`` (the default) or ``ignore``; see :mod:`okrsync.domain.precedence`
(a check-in that sends a value to an ``ignore`` key result is refused).

A manual key result (no ``metric`` and no ``value``) takes its value only from check-ins, so
``manual_value`` does not apply to it.

``grading`` (per key result, or in ``defaults``) names the rule of
:mod:`okrsync.domain.grading` that turns a value into a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from okrsync.config.fields import RequiredText, ScheduleText, refuse
from okrsync.config.reporting import show_value, suggest
from okrsync.domain.grading import DEFAULT_GRADING, GradingRule, stretch_problems
from okrsync.domain.precedence import ManualValue
from okrsync.domain.progress import TargetSpec
from okrsync.domain.schedule import Schedule

if TYPE_CHECKING:
    from okrsync.config.crossrefs import CrossReferences
    from okrsync.config.reporting import Reporter
    from okrsync.config.yaml_source import KeyPath

_RULES = tuple(rule.value for rule in GradingRule)


_MANUAL_VALUES = tuple(choice.value for choice in ManualValue)


def _choice(enum: type[StrEnum], names: tuple[str, ...], what: str) -> Any:
    def check(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str) and value in names:
            return enum(value)
        raise refuse(
            f"unknown {what} {show_value(value)}{suggest(str(value), names)} "
            f"(choose one of {', '.join(names)})"
        )

    return BeforeValidator(check)


Grading = Annotated[
    Annotated[GradingRule, WithJsonSchema({"enum": list(_RULES), "type": "string"})] | None,
    _choice(GradingRule, _RULES, "grading"),
]
ManualValueChoice = Annotated[
    Annotated[ManualValue, WithJsonSchema({"enum": list(_MANUAL_VALUES), "type": "string"})],
    Field(default=ManualValue.UNTIL_SOURCE_CHANGES, validate_default=True),
    _choice(ManualValue, _MANUAL_VALUES, "manual_value"),
]


class RemindDocument(BaseModel):
    """Where check-in reminders are sent."""

    model_config = ConfigDict(extra="forbid")

    connection: RequiredText = Field(description="Name of the connection (e.g. slack) to use.")
    channel: RequiredText = Field(description="Channel to post in, e.g. '#sales-okrs'.")


class CheckInsDocument(BaseModel):
    """How a key result is checked in on (``check_ins:``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    every: ScheduleText = Field(
        default=None, description="When check-ins are due: 'every 7d' or a cron expression."
    )
    remind: RemindDocument | None = Field(
        default=None, description="Send a reminder when a check-in is due."
    )
    manual_value: ManualValueChoice = Field(
        description="On a metric-fed key result: until_source_changes (a manual value stands "
        "until the source reports a value different from the one it had at check-in time) or "
        "ignore (check-ins carry only confidence and note)."
    )


@dataclass(frozen=True)
class Remind:
    connection: str
    channel: str


@dataclass(frozen=True)
class CheckInPolicy:
    """A key result's check-in settings, as the engine and the reminders use them."""

    every: Schedule | None = None
    remind: Remind | None = None
    manual_value: ManualValue = ManualValue.UNTIL_SOURCE_CHANGES

    @staticmethod
    def of(document: CheckInsDocument | None) -> CheckInPolicy:
        if document is None:
            return CheckInPolicy()
        remind = document.remind
        return CheckInPolicy(
            every=document.every,
            remind=None if remind is None else Remind(remind.connection, remind.channel),
            manual_value=document.manual_value,
        )


DEFAULT_CHECK_INS = CheckInPolicy()


def check_stretch(
    read: Reporter, where: KeyPath, spec: TargetSpec, stretch: Decimal | None
) -> None:
    """Report a ``stretch`` that is not beyond the target in the kind's direction."""
    for sentence in stretch_problems(spec, stretch):
        read.problem((*where, "stretch"), sentence)


def check_check_ins(
    read: Reporter,
    refs: CrossReferences,
    where: KeyPath,
    document: CheckInsDocument | None,
    *,
    manual: bool,
) -> None:
    """Report a reminder's unknown connection, and ``manual_value: ignore`` on a key result that
    has no other way to get a value."""
    if document is None:
        return
    at = (*where, "check_ins")
    if manual and document.manual_value is ManualValue.IGNORE:
        read.problem(
            (*at, "manual_value"),
            "manual_value: ignore leaves a manual key result (no metric, no value) without any "
            "value; remove it, or give the key result a metric",
        )
    remind = document.remind
    if remind is None:
        return
    declared = refs.declared_connections
    if remind.connection not in declared and refs.connections_readable:
        read.problem(
            (*at, "remind", "connection"),
            f"unknown connection {remind.connection!r}" + suggest(remind.connection, declared),
        )


def default_grading(defaults: object) -> GradingRule:
    """``defaults.grading`` as written; a wrong one is reported with the defaults section."""
    written = defaults.get("grading") if isinstance(defaults, dict) else None
    return GradingRule(written) if written in _RULES else DEFAULT_GRADING
