"""The manual-value precedence rule, as the recorder and the check-in path ask it."""

from __future__ import annotations

from decimal import Decimal

from okrsync.domain.precedence import ManualValue, check_in_may_set_value, manual_value_stands

D = Decimal
UNTIL = ManualValue.UNTIL_SOURCE_CHANGES


def test_a_manual_value_stands_while_the_source_repeats_itself() -> None:
    assert manual_value_stands(UNTIL, D(3), D(3))
    assert manual_value_stands(UNTIL, D("3.0"), D(3))  # the same number, written otherwise


def test_the_source_takes_over_when_it_reports_something_else() -> None:
    assert not manual_value_stands(UNTIL, D(3), D(4))
    assert not manual_value_stands(UNTIL, D(3), D(6))  # even the manual value itself
    assert not manual_value_stands(UNTIL, None, D(3))  # nothing reported at check-in time


def test_ignore_never_lets_a_manual_value_stand_nor_be_checked_in() -> None:
    assert not manual_value_stands(ManualValue.IGNORE, D(3), D(3))
    assert not check_in_may_set_value(ManualValue.IGNORE, manual_key_result=False)
    assert check_in_may_set_value(UNTIL, manual_key_result=False)
    assert check_in_may_set_value(ManualValue.IGNORE, manual_key_result=True)
