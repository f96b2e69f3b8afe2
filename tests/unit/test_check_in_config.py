"""The check-in config: manual key results, ``stretch``, ``grading`` and ``check_ins``."""

from __future__ import annotations

from decimal import Decimal

from okrsync.config.check_ins import ManualValue, Remind
from okrsync.config.loader import load_config_text
from okrsync.domain.grading import GradingRule
from okrsync.domain.planner import plan_queries
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG, VALID_ENV

MANUAL = VALID_CONFIG.replace(
    "  - id: retention\n",
    """\
      - id: partners
        title: Sign 5 launch partners
        kind: increase
        start: 0
        target: 5
        stretch: 8
        check_ins: {every: "0 9 * * 1", remind: {connection: hook, channel: "#sales-okrs"}}
  - id: retention
""",
)


def test_a_manual_key_result_loads_with_its_stretch_and_check_ins() -> None:
    config = load_config_text(MANUAL, CONNECTORS, environ=VALID_ENV)
    kr = config.key_result("partners")
    assert kr.manual
    assert kr.metric_names() == frozenset()
    assert kr.stretch == Decimal(8)
    assert kr.grading is GradingRule.STRETCH
    assert kr.check_ins.every is not None
    assert kr.check_ins.remind == Remind("hook", "#sales-okrs")
    assert kr.check_ins.manual_value is ManualValue.UNTIL_SOURCE_CHANGES
    fed = config.key_result("bookings")
    assert not fed.manual
    assert fed.stretch is None
    assert fed.check_ins.every is None


def test_grading_comes_from_defaults_unless_the_key_result_gives_one() -> None:
    text = MANUAL.replace("  stale_after: 1d\n", "  stale_after: 1d\n  grading: progress\n", 1)
    text = text.replace(
        "        stretch: 8\n", "        stretch: 8\n        grading: stretch_0.7\n"
    )
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.key_result("bookings").grading is GradingRule.PROGRESS
    assert config.key_result("partners").grading is GradingRule.STRETCH


def test_manual_value_ignore_on_a_metric_fed_key_result() -> None:
    text = VALID_CONFIG.replace(
        "        stale_after: 2h\n",
        "        stale_after: 2h\n        check_ins: {manual_value: ignore}\n",
    )
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.key_result("bookings").check_ins.manual_value is ManualValue.IGNORE


def test_manual_key_results_are_not_planned_for_fetching() -> None:
    config = load_config_text(MANUAL, CONNECTORS, environ=VALID_ENV)
    planned = [item.key_result.id for item in plan_queries(config).key_results]
    assert "partners" not in planned
    assert "bookings" in planned
