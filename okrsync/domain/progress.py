"""How far a key result has come, as an exact number.

Progress is a ``Decimal`` so that a value read from a CRM as ``"41.5"`` against a target of
``83`` gives exactly ``0.5``: binary floats would store ``0.49999…`` and flip a rounded display
or a status threshold depending on the platform. All arithmetic runs in ``ENGINE_CONTEXT``,
entered with ``decimal.localcontext`` (which copies it), so neither a caller's global decimal
settings nor another thread can change a result.

Progress is deliberately *unclamped*: 1.2 means 120 % and -0.1 means the metric moved the wrong
way. The store keeps that truth; ``display_progress`` clamps only for bars and percentages.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum

ENGINE_CONTEXT = Context(
    prec=28,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The one decimal context the engine computes in: 28 significant digits, banker's rounding,
and traps on anything that would otherwise silently yield NaN or Infinity."""

ZERO = Decimal(0)
ONE = Decimal(1)
_TENTH = Decimal("0.1")
_HUNDRED = Decimal(100)


class KRKind(StrEnum):
    """What kind of movement a key result asks for."""

    INCREASE = "increase"  # grow from start to target
    DECREASE = "decrease"  # shrink from start to target
    STAY_ABOVE = "stay_above"  # keep at or above target
    STAY_BELOW = "stay_below"  # keep at or below target
    STAY_BETWEEN = "stay_between"  # keep within [low, high]
    MILESTONE = "milestone"  # done or not done


@dataclass(frozen=True)
class TargetSpec:
    """What a key result aims for; which fields matter depends on ``kind``.

    Fields a kind does not use are ignored rather than rejected: a ``stay_above`` key result may
    well record the ``start`` it was measured at, for people reading the config.
    """

    kind: KRKind
    start: Decimal | None = None
    target: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None

    def problems(self) -> list[str]:
        """Human sentences describing why this spec cannot be computed; empty when it is valid.

        Config validation shows these next to the key result, so each sentence says what to
        change, not just what is wrong.
        """
        found = [
            f"{name} must be a finite number, not {value}"
            for name, value in (
                ("start", self.start),
                ("target", self.target),
                ("low", self.low),
                ("high", self.high),
            )
            if value is not None and not value.is_finite()
        ]
        if found:
            return found
        match self.kind:
            case KRKind.INCREASE | KRKind.DECREASE:
                return self._movement_problems()
            case KRKind.STAY_ABOVE | KRKind.STAY_BELOW:
                if self.target is None:
                    return [f"kind {self.kind} needs a target"]
            case KRKind.STAY_BETWEEN:
                missing = [n for n, v in (("low", self.low), ("high", self.high)) if v is None]
                if missing:
                    return [f"kind stay_between needs {' and '.join(missing)}"]
                assert self.low is not None
                assert self.high is not None
                if self.low > self.high:
                    return [
                        f"kind stay_between needs low <= high (got low {self.low}, "
                        f"high {self.high})"
                    ]
            case KRKind.MILESTONE:
                pass
        return []

    def _movement_problems(self) -> list[str]:
        missing = [n for n, v in (("start", self.start), ("target", self.target)) if v is None]
        if missing:
            return [f"kind {self.kind} needs {' and '.join(missing)}"]
        assert self.start is not None
        assert self.target is not None
        if self.start == self.target:
            return [
                f"kind {self.kind} needs start and target to differ (both are {self.start}); "
                "use stay_above or stay_below to hold a level"
            ]
        if self.kind is KRKind.INCREASE and self.target < self.start:
            return ["kind increase needs target above start; use kind decrease to go down"]
        if self.kind is KRKind.DECREASE and self.target > self.start:
            return ["kind decrease needs target below start; use kind increase to go up"]
        return []


def progress(spec: TargetSpec, value: Decimal) -> Decimal:
    """Progress of ``value`` against ``spec``: 0 at start, 1 at target, unclamped either way.

    * increase: ``(value - start) / (target - start)``
    * decrease: ``(start - value) / (start - target)``
    * stay_above / stay_below / stay_between: 1 while the value holds the line, else 0
      (bounds inclusive)
    * milestone: 1 once ``value >= target`` (or, without a target, once the value is non-zero),
      else 0

    Raises ``ValueError`` for an invalid spec (see ``TargetSpec.problems``) or a non-finite value:
    config validation should have caught the former, and a NaN reading must not become a status.
    """
    problems = spec.problems()
    if problems:
        raise ValueError("; ".join(problems))
    if not value.is_finite():
        raise ValueError(f"cannot compute progress of a non-finite value ({value})")
    with localcontext(ENGINE_CONTEXT):
        match spec.kind:
            case KRKind.INCREASE:
                assert spec.start is not None
                assert spec.target is not None
                return (value - spec.start) / (spec.target - spec.start)
            case KRKind.DECREASE:
                assert spec.start is not None
                assert spec.target is not None
                return (spec.start - value) / (spec.start - spec.target)
            case KRKind.STAY_ABOVE:
                assert spec.target is not None
                return _binary(value >= spec.target)
            case KRKind.STAY_BELOW:
                assert spec.target is not None
                return _binary(value <= spec.target)
            case KRKind.STAY_BETWEEN:
                assert spec.low is not None
                assert spec.high is not None
                return _binary(spec.low <= value <= spec.high)
            case KRKind.MILESTONE:
                done = value >= spec.target if spec.target is not None else value != 0
                return _binary(done)


def _binary(ok: bool) -> Decimal:
    return ONE if ok else ZERO


def display_progress(p: Decimal) -> Decimal:
    """Progress for bars and charts: clamped to [0, 1] (the stored value stays unclamped)."""
    return min(max(p, ZERO), ONE)


def percent(p: Decimal) -> Decimal:
    """``p`` as a percentage rounded half-up to one decimal (``0.12345`` → ``12.3``).

    Not clamped, so that a report can say "120.0 %"; pass ``display_progress(p)`` for a bar.
    Half-up rather than the engine's banker's rounding because people reading a dashboard
    expect 12.25 % to show as 12.3 %.
    """
    with localcontext(ENGINE_CONTEXT):
        scaled = p * _HUNDRED
        if scaled.adjusted() >= ENGINE_CONTEXT.prec - 1:
            # No room left for a tenths digit: the number is already rounded to its integer part.
            return scaled
        return scaled.quantize(_TENTH, rounding=ROUND_HALF_UP)
