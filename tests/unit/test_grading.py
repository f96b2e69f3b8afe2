"""Grading arithmetic: stretch-goal scores (target 0.7, stretch 1.0), the progress rule, binary
kinds and the objective's weighted mean."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.grading import (
    TARGET_SCORE,
    GradingRule,
    WeightedScore,
    objective_score,
    score,
    stretch_problems,
)
from okrsync.domain.progress import KRKind, TargetSpec

D = Decimal

numbers = st.decimals(
    min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False
)
gaps = st.decimals(min_value=D("0.001"), max_value=10**5, places=3)
weights = st.decimals(min_value=D("0.01"), max_value=100, places=2)
scores = st.none() | st.decimals(min_value=0, max_value=1, places=4)


@st.composite
def stretched(draw: st.DrawFn) -> tuple[TargetSpec, Decimal]:
    """An increase or decrease spec with a stretch beyond its target."""
    start = draw(numbers)
    to_target = draw(gaps)
    to_stretch = draw(gaps)
    if draw(st.booleans()):
        spec = TargetSpec(KRKind.INCREASE, start=start, target=start + to_target)
        return spec, start + to_target + to_stretch
    spec = TargetSpec(KRKind.DECREASE, start=start, target=start - to_target)
    return spec, start - to_target - to_stretch


def towards(spec: TargetSpec, a: Decimal, b: Decimal) -> tuple[Decimal, Decimal]:
    """``a`` and ``b`` ordered so that the second is further along the kind's direction."""
    low, high = sorted((a, b))
    return (low, high) if spec.kind is KRKind.INCREASE else (high, low)


@given(stretched(), numbers, numbers)
def test_score_is_monotone_in_value_and_within_zero_and_one(
    case: tuple[TargetSpec, Decimal], a: Decimal, b: Decimal
) -> None:
    spec, stretch = case
    worse, better = towards(spec, a, b)
    worse_score = score(spec, worse, stretch=stretch)
    better_score = score(spec, better, stretch=stretch)
    assert worse_score is not None
    assert better_score is not None
    assert D(0) <= worse_score <= better_score <= D(1)


@given(stretched())
def test_start_target_and_stretch_score_zero_seven_tenths_and_one(
    case: tuple[TargetSpec, Decimal],
) -> None:
    spec, stretch = case
    assert spec.start is not None
    assert spec.target is not None
    assert score(spec, spec.start, stretch=stretch) == D(0)
    assert score(spec, spec.target, stretch=stretch) == TARGET_SCORE == D("0.7")
    assert score(spec, stretch, stretch=stretch) == D(1)


@given(stretched(), numbers)
def test_the_progress_rule_ignores_the_stretch(
    case: tuple[TargetSpec, Decimal], value: Decimal
) -> None:
    spec, stretch = case
    assert score(spec, value, stretch=stretch, rule=GradingRule.PROGRESS) == score(spec, value)


@pytest.mark.parametrize(
    ("kind", "start", "target", "stretch", "value", "expected"),
    [
        (KRKind.INCREASE, "0", "5", "8", "2", "0.28"),  # 0.7 * 2/5
        (KRKind.INCREASE, "0", "5", "8", "6.5", "0.85"),  # halfway from target to stretch
        (KRKind.INCREASE, "0", "5", "8", "9", "1"),  # beyond the stretch: capped
        (KRKind.INCREASE, "0", "5", "8", "-1", "0"),  # below start: floored
        (KRKind.DECREASE, "40", "10", "4", "25", "0.35"),  # 0.7 * 15/30
        (KRKind.DECREASE, "40", "10", "4", "7", "0.85"),
        (KRKind.DECREASE, "40", "10", "4", "0", "1"),
        (KRKind.INCREASE, "0", "5", None, "2", "0.4"),  # no stretch: clamped progress
        (KRKind.INCREASE, "0", "5", None, "7", "1"),
    ],
)
def test_documented_examples(
    kind: KRKind, start: str, target: str, stretch: str | None, value: str, expected: str
) -> None:
    spec = TargetSpec(kind, start=D(start), target=D(target))
    assert score(spec, D(value), stretch=None if stretch is None else D(stretch)) == D(expected)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (TargetSpec(KRKind.STAY_ABOVE, target=D(99)), "99.5", "1"),
        (TargetSpec(KRKind.STAY_ABOVE, target=D(99)), "98", "0"),
        (TargetSpec(KRKind.STAY_BELOW, target=D(3)), "4", "0"),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(2)), "1.5", "1"),
        (TargetSpec(KRKind.MILESTONE), "0", "0"),
        (TargetSpec(KRKind.MILESTONE), "1", "1"),
    ],
)
@pytest.mark.parametrize("rule", list(GradingRule))
def test_binary_kinds_score_one_or_zero(
    spec: TargetSpec, value: str, expected: str, rule: GradingRule
) -> None:
    assert score(spec, D(value), rule=rule) == D(expected)


def test_no_value_no_score() -> None:
    spec = TargetSpec(KRKind.INCREASE, start=D(0), target=D(5))
    assert score(spec, None, stretch=D(8)) is None


@pytest.mark.parametrize(
    ("spec", "stretch", "fragment"),
    [
        (TargetSpec(KRKind.INCREASE, start=D(0), target=D(5)), "5", "above the target (5)"),
        (TargetSpec(KRKind.INCREASE, start=D(0), target=D(5)), "4", "above the target"),
        (TargetSpec(KRKind.DECREASE, start=D(9), target=D(5)), "6", "below the target (5)"),
        (TargetSpec(KRKind.STAY_ABOVE, target=D(5)), "6", "not stay_above"),
        (TargetSpec(KRKind.MILESTONE), "1", "not milestone"),
        (TargetSpec(KRKind.INCREASE, start=D(0), target=D(5)), "Infinity", "finite"),
    ],
)
def test_a_stretch_must_lie_beyond_the_target(
    spec: TargetSpec, stretch: str, fragment: str
) -> None:
    problems = stretch_problems(spec, D(stretch))
    assert problems
    assert fragment in problems[0]
    with pytest.raises(ValueError, match="stretch"):
        score(spec, D(1), stretch=D(stretch))


@given(st.lists(st.tuples(scores, weights), min_size=1, max_size=8))
def test_objective_score_is_a_weighted_mean_within_its_key_results(
    items: list[tuple[Decimal | None, Decimal]],
) -> None:
    result = objective_score([WeightedScore(s, w) for s, w in items])
    known = [s for s, _ in items if s is not None]
    if not known:
        assert result is None
        return
    assert result is not None
    # A key result without a score counts as 0, as in the progress roll-up.
    counted = [D(0) if s is None else s for s, _ in items]
    assert min(counted) <= result <= max(counted)


def test_objective_score_weights_key_results() -> None:
    result = objective_score([WeightedScore(D(1), D(3)), WeightedScore(D(0), D(1))])
    assert result == D("0.75")
    assert objective_score([WeightedScore(None, D(1))]) is None
