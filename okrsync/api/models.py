"""The JSON API's own shapes: pages, errors and request bodies.

The items it answers with (a key result, an objective, a measurement, …) are
:mod:`okrsync.read_models.models`, shared with the CLI's ``--json``; they are re-exported here.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from okrsync.read_models.models import (
    Connection,
    Cycle,
    Delivery,
    KeyResult,
    Measurement,
    Model,
    Objective,
    Run,
)

__all__ = [
    "CheckIn",
    "CheckInResult",
    "Connection",
    "ConnectionList",
    "Cycle",
    "CycleList",
    "Delivery",
    "DeliveryList",
    "ErrorBody",
    "KeyResult",
    "KeyResultList",
    "Measurement",
    "MeasurementList",
    "Model",
    "Objective",
    "ObjectiveList",
    "Run",
    "RunList",
    "SyncAccepted",
    "SyncRequest",
]


class ErrorBody(Model):
    error: str = Field(description="What went wrong, in one sentence.")
    detail: Any = Field(default=None, description="More about it, when there is more.")


TOTAL = "How many the whole list holds (every page), as of this answer."
NEXT = (
    "Pass as `cursor` to get the page after this one; null on the last page. Opaque: it holds "
    "the last item's sort key, so an item listed throughout a walk, in the same place of the "
    "order, is on exactly one page, whatever is added or removed meanwhile."
)


class CycleList(Model):
    cycles: list[Cycle]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class KeyResultList(Model):
    key_results: list[KeyResult]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class ObjectiveList(Model):
    objectives: list[Objective]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class MeasurementList(Model):
    key_result: str
    measurements: list[Measurement]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class RunList(Model):
    runs: list[Run]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class DeliveryList(Model):
    deliveries: list[Delivery]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class ConnectionList(Model):
    connections: list[Connection]
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


DIGITS = 18  # a check-in's value has at most this many digits before and after the point
PLACES = Decimal(1).scaleb(-DIGITS)
ROUNDING = Context(prec=2 * DIGITS + 1)  # holds any value in range, rounded to PLACES, whole
DECIMAL_TEXT = re.compile(rf"^-?[0-9]{{1,{DIGITS}}}(\.[0-9]{{1,{DIGITS}}})?$")
# C0 and C1 control characters except tab, line feed and carriage return; lone surrogates
NOTE_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
NOTE_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def _check_value(raw: Any) -> Decimal:
    """A finite value of at most ``DIGITS`` digits before the point, kept to ``DIGITS`` after.

    A string claims exactness, so it must be that plain decimal and nothing else, matched whole
    (``re.match`` and ``$`` took ``"5\\n"``); it is stored as sent. A number is what a client's
    float made of the value (``0.1 + 0.2`` is ``0.30000000000000004``, a ratio below 0.01 has
    more than 18 decimals), so it is rounded to ``DIGITS`` places rather than refused. Numbers
    arrive as exact Decimals (:func:`okrsync.api.bodies.parse_json`) and are judged by their
    digits before any arithmetic: arithmetic raises on NaN, and on a huge exponent it rounds.
    """
    if isinstance(raw, bool):
        raise ValueError("the value must be a number or a decimal string, not true or false")
    if isinstance(raw, str):
        if DECIMAL_TEXT.fullmatch(raw) is None:
            raise ValueError(
                "the value must be a plain decimal such as '1250.5': an optional minus, "
                f"at most {DIGITS} digits, a point and at most {DIGITS} more, nothing around them"
            )
        number = Decimal(raw)
    elif isinstance(raw, int | float | Decimal):
        number = Decimal(raw) if isinstance(raw, int | Decimal) else Decimal(repr(raw))
        if not number.is_finite():
            raise ValueError("the value must be a finite number, not NaN or Infinity")
        if number and number.adjusted() >= DIGITS:
            raise ValueError(f"the value is out of range (|value| < 1e{DIGITS})")
        number = ROUNDING.quantize(number, PLACES) if _decimals(number) > DIGITS else number
        if number and number.adjusted() >= DIGITS:  # 999…9.9999… rounded up
            raise ValueError(f"the value is out of range (|value| < 1e{DIGITS})")
        number = Decimal(format(ROUNDING.normalize(number), "f"))  # plain: 1E+2 is 100
    else:
        raise ValueError("the value must be a number or a decimal string")
    return Decimal(0) if number.is_zero() else number  # -0 and 0.000 are 0


def _decimals(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return -exponent


def _check_note(note: str) -> str:
    found = NOTE_REFUSED.search(note)
    if found is not None:
        raise ValueError(
            f"the note holds U+{ord(found.group()):04X}: no control characters other than "
            "tab, line feed and carriage return"
        )
    return note


VALUE_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": -1e18, "exclusiveMaximum": 1e18},
            {"type": "string", "pattern": DECIMAL_TEXT.pattern},
        ],
        "description": (
            "The observed value: a decimal string, kept exactly (at most "
            f"{DIGITS} digits on either side of the point), or a finite number, rounded to "
            f"{DIGITS} decimal places."
        ),
    }
)
CheckInValue = Annotated[
    Decimal,
    BeforeValidator(_check_value),
    VALUE_SCHEMA,
]
OptionalCheckInValue = Annotated[
    Decimal | None,  # absent: None; ``null`` goes through the validator and is refused
    BeforeValidator(_check_value),
    VALUE_SCHEMA,
]


def _check_confidence(raw: Any) -> int:
    """An integer from 1 to 10: JSON ``7`` or ``7.0`` (an integer to JSON Schema; numbers arrive
    as ``Decimal``), not ``7.5``, ``"7"``, ``true`` or ``null``."""
    whole = (isinstance(raw, int) and not isinstance(raw, bool)) or (
        isinstance(raw, Decimal) and raw.is_finite() and raw == raw.to_integral_value()
    )
    if not whole or not 1 <= raw <= 10:  # compared before int(): 1e999999 stays cheap
        raise ValueError("the confidence must be an integer from 1 to 10")
    return int(raw)


Confidence = Annotated[
    int | None,
    BeforeValidator(_check_confidence),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 10}),
]
NoteText = Annotated[
    str,
    Field(min_length=1, max_length=2000, json_schema_extra={"pattern": NOTE_PATTERN}),
    AfterValidator(_check_note),
]


class CheckIn(Model):
    """A check-in by a person, recorded with origin ``manual``: a value, a confidence or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["value"]}, {"required": ["confidence"]}]},
    )

    value: OptionalCheckInValue = Field(
        default=None,
        description="Omit to check in only a confidence and a note; null is refused.",
    )
    confidence: Confidence = Field(
        default=None, description="How confident the owner is of reaching the target, 1 to 10."
    )
    note: NoteText | None = Field(
        default=None,
        description="Why, or where the value came from. Tab, line feed and carriage return are "
        "the only control characters a note may hold.",
    )

    @model_validator(mode="after")
    def _something(self) -> CheckIn:
        if self.value is None and self.confidence is None:
            raise ValueError("send a value, a confidence (1 to 10) or both")
        return self


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
