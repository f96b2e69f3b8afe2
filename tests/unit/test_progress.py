"""Progress arithmetic: exact, unclamped, independent of the caller's decimal context."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.progress import KRKind, TargetSpec, display_progress, percent, progress

D = Decimal

numbers = st.decimals(
    min_value=-(10**9), max_value=10**9, places=4, allow_nan=False, allow_infinity=False
)


def inc(start: str, target: str) -> TargetSpec:
    return TargetSpec(KRKind.INCREASE, start=D(start), target=D(target))


def dec(start: str, target: str) -> TargetSpec:
    return TargetSpec(KRKind.DECREASE, start=D(start), target=D(target))


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (inc("0", "100"), "25", "0.25"),
        (inc("0", "83"), "41.5", "0.5"),
        (inc("10", "20"), "10", "0"),
        (inc("10", "20"), "20", "1"),
        (inc("10", "20"), "25", "1.5"),  # over-achievement is kept
        (inc("10", "20"), "5", "-0.5"),  # going the wrong way is kept
        (inc("-20", "-10"), "-15", "0.5"),
        (inc("0.1", "0.3"), "0.2", "0.5"),  # exact where binary floats are not
        (dec("40", "10"), "25", "0.5"),
        (dec("40", "10"), "40", "0"),
        (dec("40", "10"), "10", "1"),
        (dec("40", "10"), "4", "1.2"),
        (dec("40", "10"), "46", "-0.2"),
    ],
)
def test_movement_progress_is_the_documented_fraction(
    spec: TargetSpec, value: str, expected: str
) -> None:
    assert progress(spec, D(value)) == D(expected)


def test_progress_has_28_significant_digits() -> None:
    assert progress(inc("0", "3"), D(1)) == D("0.3333333333333333333333333333")


def test_progress_ignores_the_callers_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = ROUND_DOWN
        result = progress(inc("0", "3"), D(2))
    assert result == D("0.6666666666666666666666666667")


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (TargetSpec(KRKind.STAY_ABOVE, target=D(99)), "99.5", 1),
        (TargetSpec(KRKind.STAY_ABOVE, target=D(99)), "99", 1),
        (TargetSpec(KRKind.STAY_ABOVE, target=D(99)), "98.99", 0),
        (TargetSpec(KRKind.STAY_BELOW, target=D(5)), "5", 1),
        (TargetSpec(KRKind.STAY_BELOW, target=D(5)), "5.01", 0),
        (TargetSpec(KRKind.STAY_BELOW, target=D(5)), "-3", 1),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(2)), "1", 1),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(2)), "2", 1),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(2)), "0.99", 0),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(2)), "2.01", 0),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(3), high=D(3)), "3", 1),
        (TargetSpec(KRKind.MILESTONE), "0", 0),
        (TargetSpec(KRKind.MILESTONE), "1", 1),
        (TargetSpec(KRKind.MILESTONE), "-1", 1),
        (TargetSpec(KRKind.MILESTONE, target=D(3)), "2", 0),
        (TargetSpec(KRKind.MILESTONE, target=D(3)), "3", 1),
        (TargetSpec(KRKind.MILESTONE, target=D(3)), "7", 1),
    ],
)
def test_binary_kinds_give_exactly_zero_or_one(spec: TargetSpec, value: str, expected: int) -> None:
    result = progress(spec, D(value))
    assert result == expected
    assert result in (D(0), D(1))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TargetSpec(KRKind.INCREASE, target=D(1)), "kind increase needs start"),
        (TargetSpec(KRKind.INCREASE, start=D(1)), "kind increase needs target"),
        (TargetSpec(KRKind.DECREASE), "kind decrease needs start and target"),
        (inc("5", "5"), "start and target to differ"),
        (dec("5", "5"), "start and target to differ"),
        (inc("10", "5"), "kind increase needs target above start; use kind decrease to go down"),
        (dec("5", "10"), "kind decrease needs target below start; use kind increase to go up"),
        (TargetSpec(KRKind.STAY_ABOVE), "kind stay_above needs a target"),
        (TargetSpec(KRKind.STAY_BELOW, start=D(1)), "kind stay_below needs a target"),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(1)), "kind stay_between needs high"),
        (TargetSpec(KRKind.STAY_BETWEEN), "kind stay_between needs low and high"),
        (TargetSpec(KRKind.STAY_BETWEEN, low=D(2), high=D(1)), "needs low <= high"),
        (TargetSpec(KRKind.MILESTONE, target=D("NaN")), "target must be a finite number"),
        (TargetSpec(KRKind.INCREASE, start=D(0), target=D("Infinity")), "finite"),
    ],
)
def test_invalid_specs_are_explained(spec: TargetSpec, message: str) -> None:
    problems = spec.problems()
    assert len(problems) == 1
    assert message in problems[0]
    with pytest.raises(ValueError, match=r"kind|finite"):
        progress(spec, D(1))


@pytest.mark.parametrize(
    "spec",
    [
        inc("0", "1"),
        dec("1", "0"),
        TargetSpec(KRKind.STAY_ABOVE, start=D(3), target=D(1)),  # unused start is harmless
        TargetSpec(KRKind.STAY_BELOW, target=D(1)),
        TargetSpec(KRKind.STAY_BETWEEN, low=D(1), high=D(1)),
        TargetSpec(KRKind.MILESTONE),
        TargetSpec(KRKind.MILESTONE, target=D(1)),
    ],
)
def test_valid_specs_have_no_problems(spec: TargetSpec) -> None:
    assert spec.problems() == []


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        progress(inc("0", "1"), D(value))


@pytest.mark.parametrize(
    ("p", "shown"),
    [("-0.3", "0"), ("0", "0"), ("0.42", "0.42"), ("1", "1"), ("2.5", "1")],
)
def test_display_progress_clamps_to_the_unit_interval(p: str, shown: str) -> None:
    assert display_progress(D(p)) == D(shown)


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        ("0.12345", "12.3"),
        ("0.1225", "12.3"),  # half-up for people, not banker's rounding
        ("0.1224999", "12.2"),
        ("0", "0.0"),
        ("1", "100.0"),
        ("1.2", "120.0"),  # not clamped
        ("-0.05", "-5.0"),
        ("0.3333333333333333333333333333", "33.3"),
    ],
)
def test_percent_rounds_to_one_decimal(p: str, shown: str) -> None:
    result = percent(D(p))
    assert result == D(shown)
    assert str(result) == shown


def test_percent_of_a_huge_progress_does_not_fail() -> None:
    assert percent(D("1E+40")) == D("1E+42")


@given(start=numbers, width=numbers.filter(lambda w: w > 0), a=numbers, b=numbers)
def test_increase_is_anchored_and_monotonic(
    start: Decimal, width: Decimal, a: Decimal, b: Decimal
) -> None:
    spec = TargetSpec(KRKind.INCREASE, start=start, target=start + width)
    assert progress(spec, start) == 0
    assert progress(spec, start + width) == 1
    low, high = sorted((a, b))
    assert progress(spec, low) <= progress(spec, high)


@given(start=numbers, width=numbers.filter(lambda w: w > 0), v=numbers)
def test_decrease_mirrors_increase(start: Decimal, width: Decimal, v: Decimal) -> None:
    down = TargetSpec(KRKind.DECREASE, start=start, target=start - width)
    up = TargetSpec(KRKind.INCREASE, start=-start, target=-start + width)
    assert progress(down, start) == 0
    assert progress(down, start - width) == 1
    assert progress(down, v) == progress(up, -v)


@given(p=st.decimals(allow_nan=False, allow_infinity=False))
def test_display_progress_is_within_bounds_and_identity_inside(p: Decimal) -> None:
    shown = display_progress(p)
    assert 0 <= shown <= 1
    if 0 <= p <= 1:
        assert shown == p
