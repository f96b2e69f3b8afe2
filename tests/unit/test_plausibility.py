"""The plausibility guard: which numbers may become a metric's value, and a metric's min/max."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.http_json.source import HttpJsonQuery
from connectors.hubspot.models import HubSpotQuery
from connectors.jira.models import JiraQuery
from okrsync.config import load_config_text
from okrsync.domain.plausibility import (
    MAX_MAGNITUDE,
    MIN_MAGNITUDE,
    Bounds,
    ImplausibleValueError,
    check_readings,
    implausibility,
)
from okrsync.errors import ConfigErrors, ConnectorError
from okrsync.sdk.connector import QuerySpec
from okrsync.sdk.models import CycleWindow, Query, Reading
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG, VALID_ENV

CYCLE = CycleWindow("q4", date(2026, 10, 1), date(2026, 12, 31))
AT = datetime(2026, 11, 2, tzinfo=UTC)

# Readings a business metric can have: finite, of a sane size and precision.
plausible = st.decimals(
    min_value=-(MAX_MAGNITUDE - 1), max_value=MAX_MAGNITUDE - 1, allow_nan=False, places=6
).filter(lambda v: v == 0 or abs(v) >= MIN_MAGNITUDE)
non_finite = st.sampled_from(
    [Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")]
)
absurd_exponent = st.integers(min_value=21, max_value=999_999).flatmap(
    lambda e: st.sampled_from([Decimal(f"1E+{e}"), Decimal(f"-7.5E+{e}")])
)


@st.composite
def bounds(draw: st.DrawFn) -> Bounds:
    """A metric's min/max as ``validate`` lets them through: either may be absent, min <= max."""
    low, high = draw(st.one_of(st.none(), plausible)), draw(st.one_of(st.none(), plausible))
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Bounds(low, high)


@given(value=st.one_of(non_finite, absurd_exponent), limits=bounds(), count=st.booleans())
def test_a_non_finite_or_absurd_number_is_refused_whatever_the_bounds(
    value: Decimal, limits: Bounds, count: bool
) -> None:
    assert implausibility(value, limits, count=count) is not None


@given(value=plausible, limits=bounds())
def test_a_finite_number_passes_exactly_when_inside_the_bounds(
    value: Decimal, limits: Bounds
) -> None:
    inside = (limits.low is None or value >= limits.low) and (
        limits.high is None or value <= limits.high
    )
    assert (implausibility(value, limits) is None) == inside


@given(value=plausible)
def test_a_count_passes_exactly_when_not_negative(value: Decimal) -> None:
    assert (implausibility(value, count=True) is None) == (value >= 0)


def test_too_many_digits_and_tiny_exponents_are_refused() -> None:
    assert implausibility(Decimal("1." + "1" * 40)) is not None
    assert implausibility(Decimal("1E-999999")) is not None
    assert implausibility(Decimal(0)) is None
    assert implausibility(Decimal("0.000001")) is None


@given(a=bounds(), b=bounds(), value=plausible)
def test_combined_bounds_pass_what_both_pass(a: Bounds, b: Bounds, value: Decimal) -> None:
    both = implausibility(value, a) is None and implausibility(value, b) is None
    assert (implausibility(value, a & b) is None) == both


def reading(key: str, value: Decimal | None, error: ConnectorError | None = None) -> Reading:
    return Reading(key=key, value=value, query_text="q", fetched_at=AT, error=error)


def query(spec: QuerySpec, *metrics: str) -> Query[QuerySpec]:
    key = Query.make_key("src", spec, CYCLE)
    return Query(key, "src", metrics, spec, CYCLE)


def test_a_refused_reading_is_its_query_error_naming_the_metric() -> None:
    asked = query(HttpJsonQuery(json_path="$.total"), "arr")
    (refused,) = check_readings([asked], [reading(asked.key, Decimal(-5))], {"arr": Bounds(0)})
    assert refused.value is None and not refused.ok
    assert isinstance(refused.error, ImplausibleValueError)
    assert str(refused.error) == (
        "connection 'src', metric 'arr': refused the answer: -5 is below the metric's min 0"
    )


def test_counts_declared_by_the_connectors_refuse_negative_answers() -> None:
    counts = [
        query(JiraQuery(jql="project = X"), "issues"),
        query(HubSpotQuery(object="deals"), "deals"),
        query(HttpJsonQuery(json_path="$.items", aggregate="count"), "items"),
    ]
    sums = [
        query(JiraQuery(jql="project = X", aggregate="sum", field="points"), "points"),
        query(HttpJsonQuery(json_path="$.total"), "total"),
    ]
    answers = [reading(q.key, Decimal(-548_777_266_265_175)) for q in counts + sums]
    checked = check_readings(counts + sums, answers, {})
    assert [r.ok for r in checked] == [False, False, False, True, True]
    assert "is a negative count" in str(checked[0].error)


def test_a_shared_question_is_held_to_every_asker_bounds() -> None:
    asked = query(HttpJsonQuery(json_path="$.total"), "a", "b")
    limits = {"a": Bounds(Decimal(0)), "b": Bounds(high=Decimal(10))}
    assert check_readings([asked], [reading(asked.key, Decimal(5))], limits)[0].ok
    assert not check_readings([asked], [reading(asked.key, Decimal(11))], limits)[0].ok


def test_errors_and_unknown_keys_pass_through_untouched() -> None:
    asked = query(HttpJsonQuery(json_path="$.total"), "a")
    failed = reading(asked.key, None, ConnectorError("boom"))
    stranger = reading("other", Decimal("NaN"))
    assert check_readings([asked], [failed, stranger], {}) == [failed, stranger]


# --- config: min/max ---------------------------------------------------------------------------

WON = "    schedule: every 15m\n"


def test_min_and_max_load_as_the_metric_bounds() -> None:
    text = VALID_CONFIG.replace(WON, WON + "    min: 0\n    max: '1_000_000'\n", 1)
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.metrics["won"].bounds == Bounds(Decimal(0), Decimal(1_000_000))
    assert config.metrics["lost"].bounds == Bounds()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    min: 10\n    max: 5\n", "metrics.won.min: min 10 is above max 5"),
        ("    min: lots\n", "metrics.won.min: expected a number, got 'lots'"),
        ("    max: .nan\n", "metrics.won.max: expected a finite number"),
    ],
)
def test_wrong_bounds_are_file_line_errors(extra: str, message: str) -> None:
    assert WON in VALID_CONFIG
    text = VALID_CONFIG.replace(WON, WON + extra, 1)
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ=VALID_ENV, secrets_dir=Path("/nope"))
    rendered = str(caught.value)
    assert message in rendered
    line = VALID_CONFIG[: VALID_CONFIG.index(WON)].count("\n") + 2
    assert f"<config>:{line}: metrics.won.m" in rendered
