"""The one rule for numbers people read (okrsync.domain.numbers): decimals, half-up, separators."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.domain.numbers import (
    MAX_DECIMALS,
    decimals_for,
    default_decimals,
    display_number,
    format_number,
    round_number,
)

finite = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)
places = st.integers(min_value=0, max_value=MAX_DECIMALS)
SHAPE = re.compile(r"-?\d{1,3}(,\d{3})*(\.\d+)?")


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        ("66.66666666666666666666666667", 1, "66.7"),
        ("30500.0", 0, "30,500"),
        ("75.00", 1, "75.0"),
        ("87.500", 1, "87.5"),
        ("87.25", 1, "87.3"),  # half-up, not to even
        ("2.5", 0, "3"),
        ("-2.5", 0, "-3"),
        ("-0.04", 1, "0.0"),  # no "-0.0"
        ("1E+3", 0, "1,000"),
        ("1234567.891", 2, "1,234,567.89"),
    ],
)
def test_examples_from_the_issue(value: str, decimals: int, text: str) -> None:
    assert format_number(Decimal(value), decimals) == text


@given(finite, places)
def test_shape_is_fixed_point_with_exactly_the_decimals(value: Decimal, decimals: int) -> None:
    text = format_number(value, decimals)
    assert SHAPE.fullmatch(text), text
    fraction = text.partition(".")[2]
    assert len(fraction) == decimals
    assert "E" not in text and "e" not in text


@given(finite, places)
def test_rounded_is_within_half_a_step_and_reads_back(value: Decimal, decimals: int) -> None:
    step = Decimal(1).scaleb(-decimals)
    rounded = round_number(value, decimals)
    assert abs(rounded - value) <= step / 2
    assert Decimal(format_number(value, decimals).replace(",", "")) == rounded


@given(finite, places)
def test_ties_round_away_from_zero(value: Decimal, decimals: int) -> None:
    step = Decimal(1).scaleb(-decimals)
    tie = round_number(value, decimals) + step / 2
    assert round_number(tie, decimals) == round_number(tie, decimals).copy_abs().copy_sign(tie)
    assert abs(round_number(tie, decimals)) > abs(tie) or tie == 0 or abs(tie) < step


@given(finite, places)
def test_same_number_same_text_whatever_its_exponent(value: Decimal, decimals: int) -> None:
    assert format_number(value, decimals) == format_number(value.normalize(), decimals)
    padded = value.quantize(Decimal("1E-8"))
    assert format_number(value, decimals) == format_number(padded, decimals)


@given(finite, places)
def test_sign_mirrors(value: Decimal, decimals: int) -> None:
    positive, negative = format_number(abs(value), decimals), format_number(-abs(value), decimals)
    assert negative in (positive, "-" + positive)


def test_defaults_by_unit() -> None:
    assert default_decimals("%") == 1
    assert default_decimals("percent") == 1
    for unit in ("$", "€", "USD", "EUR", "deals", "ms", None, ""):
        assert default_decimals(unit) == 0, unit
    assert decimals_for("%", 0) == 0
    assert decimals_for("USD", 2) == 2
    assert display_number(None, "%", None) is None
    assert display_number(Decimal("12.345"), "%", None) == "12.3"
    assert display_number(Decimal("12.345"), "USD", 2) == "12.35"


@pytest.mark.parametrize("bad", [-1, MAX_DECIMALS + 1])
def test_decimals_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="decimals"):
        format_number(Decimal(1), bad)


def test_not_finite_is_refused() -> None:
    with pytest.raises(ValueError, match="Infinity"):
        format_number(Decimal("Infinity"), 0)


def test_decimals_from_the_config_reach_the_mirrors_update() -> None:
    from okrsync.config import load_config_text
    from okrsync.engine.outbox import decimals_of
    from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG, VALID_ENV

    text = VALID_CONFIG.replace("        unit: USD\n", "        unit: USD\n        decimals: 2\n")
    assert text != VALID_CONFIG
    (revenue, _retention) = load_config_text(text, CONNECTORS, environ=VALID_ENV).objectives
    assert decimals_of(revenue, "bookings", "USD") == 2  # its own setting
    assert decimals_of(revenue, "win-rate", "%") == 1  # the unit's default


@pytest.mark.parametrize("bad", ["-1", "7", "two", "1.5"])
def test_bad_decimals_name_the_line_and_key(bad: str) -> None:
    from okrsync.config import load_config_text
    from okrsync.errors import ConfigErrors
    from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG, VALID_ENV

    usd = "        unit: USD\n"
    text = VALID_CONFIG.replace(usd, f"{usd}        decimals: {bad}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ=VALID_ENV)
    line = text.splitlines().index(f"        decimals: {bad}") + 1
    message = str(caught.value)
    assert f":{line}: objectives[0].key_results[0].decimals:" in message, message
