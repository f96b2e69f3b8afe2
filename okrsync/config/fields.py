"""The value types of the config's document models: what YAML hands over, read as the config
means it, and every refusal worded for the person editing the file.

YAML gives loosely typed scalars (``2026`` for a title, ``"1_000"`` for a number, text for
``2026-10-01``); each type here is an ``Annotated`` pydantic type whose validator coerces such a
value to its exact type (``Decimal``, ``date``, ``timedelta``, :class:`Schedule`) or raises an
``okrsync`` error carrying the sentence :mod:`.pydantic_errors` reports at the value's key path.
The JSON Schema of each type is the one an editor should check the YAML against.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from okrsync.config.reporting import kind_of, show_value, suggest
from okrsync.domain.progress import KRKind
from okrsync.domain.schedule import Schedule
from okrsync.errors import ScheduleError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
OKRSYNC_ERROR = "okrsync"  # the pydantic error type whose message is already ours

_ID = re.compile(ID_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_KINDS = tuple(kind.value for kind in KRKind)
_KIND_BY_NAME = {kind.value: kind for kind in KRKind}


_NOTHING: Any = object()


def refuse(message: str, got: object = _NOTHING) -> PydanticCustomError:
    """The error a validator raises: ``message`` is reported as written, followed by the value
    it ``got`` (quoted, or only named where values are secret: see :mod:`.pydantic_errors`)."""
    context: dict[str, Any] = {"message": message}
    if got is not _NOTHING:
        context["got"] = got
    return PydanticCustomError(OKRSYNC_ERROR, "{message}", context)


def parse_duration(text: str) -> timedelta | None:
    """``30s``, ``15m``, ``2h``, ``1d``, ``1h30m`` → a positive timedelta; ``None`` if malformed."""
    compact = text.strip().replace(" ", "")
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        return None
    seconds = 0
    for part in match.groups():
        if part:
            seconds += int(part[:-1]) * _DURATION_UNITS[part[-1]]
    if seconds <= 0:
        return None
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return None


def _missing(info: ValidationInfo) -> PydanticCustomError:
    return refuse(f"missing required key {info.field_name!r}")


def _text(value: object, info: ValidationInfo) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # ``title: 2026`` is meant as text
    raise refuse("expected a string", got=value)


def _required_text(value: object, info: ValidationInfo) -> str:
    text = _text(value, info)
    if text is None:
        raise _missing(info)
    return text


def _non_empty_text(value: object, info: ValidationInfo) -> str:
    text = _required_text(value, info)
    if not text.strip():
        raise refuse("must not be empty")
    return text


def _identifier(what: str) -> Callable[[object, ValidationInfo], str]:
    def check(value: object, info: ValidationInfo) -> str:
        if value is None:
            raise _missing(info)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise refuse(f"expected {what} (a string)", got=value)
        if not _ID.fullmatch(value):
            raise refuse(
                f"{what} {value!r} is not valid: use letters, digits and _ . : - "
                "(starting with a letter or digit)"
            )
        return value

    return check


def read_number(value: object) -> Decimal | None:
    """A YAML number (or text such as ``"1_000"``) as an exact ``Decimal``."""
    if value is None:
        return None
    if isinstance(value, bool | dict | list | date):
        raise refuse("expected a number", got=value)
    if isinstance(value, int):
        return Decimal(value)
    text = str(value).strip().replace("_", "") if isinstance(value, str) else str(value)
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise refuse("expected a number", got=value) from None
    if not number.is_finite():
        raise refuse("expected a finite number", got=value)
    return number


def _weight(value: object) -> Decimal:
    number = read_number(value)
    if number is None:
        return Decimal(1)
    if number <= 0:
        raise refuse(f"weight must be greater than 0, got {number}")
    return number


def _fraction(value: object) -> Decimal | None:
    number = read_number(value)
    if number is not None and not Decimal(0) < number <= Decimal(1):
        raise refuse("must be above 0 and at most 1 (= 100 points)")
    return number


def _day(value: object, info: ValidationInfo) -> date:
    if value is None:
        raise _missing(info)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise refuse("expected a date like 2026-10-01", got=value)


def _duration(value: object) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None:
        raise refuse("expected a duration like 30s, 15m, 2h, 1d or 1h30m", got=value)
    return parsed


def _schedule(value: object) -> Schedule | None:
    if value is None or isinstance(value, Schedule):
        return value
    if not isinstance(value, str):
        raise refuse(
            "expected a schedule like 'every 15m' or a cron expression like '*/10 * * * *'",
            got=value,
        )
    try:
        return Schedule.parse(value)
    except ScheduleError as exc:
        raise refuse(str(exc)) from None


def _kind(value: object, info: ValidationInfo) -> KRKind:
    if value is None:
        raise _missing(info)
    found = _KIND_BY_NAME.get(value) if isinstance(value, str) else None
    if found is None:
        raise refuse(
            f"unknown kind {show_value(value)}{suggest(str(value), _KINDS)} "
            f"(choose one of {', '.join(_KINDS)})"
        )
    return found


def _toggle(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise refuse("expected true or false", got=value)


def _expression_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise refuse("expected an expression of metrics (a string)", got=value)


def _list_of(what: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return []
        if not isinstance(value, list):
            raise refuse(
                f"expected {what} (a list of items, each starting with '- '), got {kind_of(value)}"
            )
        return value

    return check


_NUMBER_SCHEMA = WithJsonSchema({"type": "number"})
_DURATION_SCHEMA = WithJsonSchema({"pattern": DURATION_PATTERN, "type": "string"})
_SCHEDULE_SCHEMA = WithJsonSchema({"type": "string"})

Text = Annotated[str | None, BeforeValidator(_text)]
"""Optional text; a number written where text is meant is taken as its text."""
RequiredText = Annotated[str, BeforeValidator(_required_text)]
NonEmptyText = Annotated[str, BeforeValidator(_non_empty_text)]
ExpressionText = Annotated[str | None, BeforeValidator(_expression_text)]
Number = Annotated[Annotated[Decimal, _NUMBER_SCHEMA] | None, BeforeValidator(read_number)]
Weight = Annotated[
    Decimal,
    WithJsonSchema({"exclusiveMinimum": 0, "type": "number"}),
    Field(default=1, validate_default=True),
    BeforeValidator(_weight),
]
Fraction = Annotated[Annotated[Decimal, _NUMBER_SCHEMA] | None, BeforeValidator(_fraction)]
Day = Annotated[date, BeforeValidator(_day)]
Duration = Annotated[Annotated[timedelta, _DURATION_SCHEMA] | None, BeforeValidator(_duration)]
ScheduleText = Annotated[Annotated[Schedule, _SCHEDULE_SCHEMA] | None, BeforeValidator(_schedule)]
Kind = Annotated[KRKind, BeforeValidator(_kind)]
Toggle = Annotated[bool, BeforeValidator(_toggle)]


def _id_of(what: str) -> Any:
    return BeforeValidator(_identifier(what))


_ID_SCHEMA = Field(pattern=ID_PATTERN, min_length=1)
CycleId = Annotated[str, _ID_SCHEMA, _id_of("cycle id")]
ObjectiveId = Annotated[str, _ID_SCHEMA, _id_of("objective id")]
KeyResultId = Annotated[str, _ID_SCHEMA, _id_of("key result id")]


def listed(what: str) -> BeforeValidator:
    """For ``Annotated[list[...], listed("mirrors")]``: null is an empty list, anything else
    that is not a list is refused in words naming ``what``."""
    return BeforeValidator(_list_of(what))
