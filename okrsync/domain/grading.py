"""How well a key result (or an objective) scored, on the 0.0 to 1.0 scale OKR teams grade with.

Progress (``okrsync.domain.progress``) says how far a key result has come towards its target;
a *score* says how good that is. Teams that write stretch goals grade so that reaching the
target — the ambitious-but-expected result — is 0.7 and reaching the stretch is 1.0. The score
is always clamped to [0, 1], exact ``Decimal`` arithmetic in ``ENGINE_CONTEXT``, and takes no
clock or I/O.

Rules (``grading:`` in ``defaults`` and per key result):

* ``stretch_0.7`` (the default). For increase and decrease key results *with* a ``stretch``:
  linear from 0 at ``start`` to 0.7 at ``target``, then linear from 0.7 at ``target`` to 1.0 at
  ``stretch``; below start 0, beyond the stretch 1.0. Decrease key results are the mirror image
  (``stretch`` lies below ``target``). *Without* a stretch there is no value that earns 1.0 other
  than the target itself, so the score is the clamped progress (0 at start, 1.0 at target): a
  team that sets no stretch wrote its target as the ambitious number.
* ``progress``: the score is the clamped progress, whether or not a stretch is given.

For the binary kinds (``stay_above``, ``stay_below``, ``stay_between``, ``milestone``) every
rule gives 1.0 while the line is held (or the milestone is done) and 0.0 otherwise.

An objective scores as the weighted mean of its key results' scores, with the same weights and
the same rules for missing values as the progress roll-up (``okrsync.domain.status.rollup``):
a key result without a score counts as 0 unless none has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from okrsync.domain.progress import (
    ENGINE_CONTEXT,
    ONE,
    KRKind,
    TargetSpec,
    display_progress,
    progress,
)
from okrsync.domain.status import Weighted, rollup

TARGET_SCORE = Decimal("0.7")
"""The score of a key result that exactly reaches its target when it has a stretch."""


class GradingRule(StrEnum):
    """How a key result's value becomes a score (``grading:`` in the config)."""

    STRETCH = "stretch_0.7"
    PROGRESS = "progress"


DEFAULT_GRADING = GradingRule.STRETCH


def stretch_problems(spec: TargetSpec, stretch: Decimal | None) -> list[str]:
    """Why ``stretch`` does not fit ``spec``; empty when it does (or when there is none).

    A stretch lies beyond the target in the kind's direction: above it for ``increase``, below
    it for ``decrease``. Other kinds have nothing to stretch towards.
    """
    if stretch is None:
        return []
    if spec.kind not in (KRKind.INCREASE, KRKind.DECREASE):
        return [f"stretch only applies to kinds increase and decrease, not {spec.kind}"]
    if not stretch.is_finite():
        return [f"stretch must be a finite number, not {stretch}"]
    if spec.target is None:
        return []  # the spec's own problems say that the target is missing
    if spec.kind is KRKind.INCREASE and stretch <= spec.target:
        return [f"stretch ({stretch}) must be above the target ({spec.target}) for kind increase"]
    if spec.kind is KRKind.DECREASE and stretch >= spec.target:
        return [f"stretch ({stretch}) must be below the target ({spec.target}) for kind decrease"]
    return []


def score(
    spec: TargetSpec,
    value: Decimal | None,
    *,
    stretch: Decimal | None = None,
    rule: GradingRule = DEFAULT_GRADING,
) -> Decimal | None:
    """The score (0.0 to 1.0) of ``value`` for a key result of ``spec``; ``None`` without a value.

    Raises ``ValueError`` for an invalid spec or stretch (config validation refuses both) or a
    non-finite value.
    """
    if value is None:
        return None
    problems = stretch_problems(spec, stretch)
    if problems:
        raise ValueError("; ".join(problems))
    p = progress(spec, value)  # validates the spec and the value
    if rule is GradingRule.PROGRESS or stretch is None or spec.kind not in _MOVEMENT:
        return display_progress(p)
    assert spec.target is not None
    with localcontext(ENGINE_CONTEXT):
        if p <= ONE:
            return TARGET_SCORE * display_progress(p)
        # Beyond the target: how far towards the stretch, in the kind's direction.
        beyond = (value - spec.target) / (stretch - spec.target)
        return min(TARGET_SCORE + (ONE - TARGET_SCORE) * beyond, ONE)


_MOVEMENT = (KRKind.INCREASE, KRKind.DECREASE)


@dataclass(frozen=True)
class WeightedScore:
    """One key result's contribution to its objective's score."""

    score: Decimal | None
    weight: Decimal


def objective_score(items: Sequence[WeightedScore]) -> Decimal | None:
    """Weighted mean of the key results' scores, by the progress roll-up's rules.

    ``None`` when no key result has a score or the weights sum to 0.
    """
    return rollup([Weighted(item.score, item.weight) for item in items])
