"""Planning shares identical queries; evaluation turns readings into value, progress, status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from okrsync.config import Config, load_config_text
from okrsync.domain.evaluate import MetricReading, evaluate
from okrsync.domain.planner import plan_queries
from okrsync.errors import QueryError
from okrsync.sdk.models import Reading, Status
from tests.unit.config_fixtures import CONNECTORS

CONFIG = """\
version: 1
connections:
  db: {type: fake_sql, url: "sqlite://"}
  other: {type: fake_sql, url: "sqlite:///other"}
cycles:
  - {id: q3, start: 2026-07-01, end: 2026-09-30}
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won: {connection: db, query: "SELECT SUM(amount) FROM deals WHERE won = 1"}
  won_again: {connection: db, query: "SELECT SUM(amount) FROM deals WHERE won = 1"}
  lost: {connection: db, query: "SELECT COUNT(*) FROM deals WHERE won = 0"}
  tickets: {connection: other, query: "SELECT COUNT(*) FROM tickets"}
objectives:
  - id: sales
    title: Sales
    cycle: q4
    key_results:
      - {id: bookings, title: Bookings, metric: won, kind: increase, start: 0, target: 1000}
      - {id: bookings2, title: Same, metric: won_again, kind: increase, start: 0, target: 500}
      - {id: rate, title: Rate, value: "won / (won + lost) * 100", kind: stay_above, target: 30}
  - id: support
    title: Support
    cycle: q3
    key_results:
      - {id: old_bookings, title: Q3 bookings, metric: won, kind: increase, start: 0, target: 1}
      - {id: backlog, title: Backlog, metric: tickets, kind: decrease, start: 200, target: 50}
"""
NOW = datetime(2026, 11, 15, tzinfo=UTC)


def config() -> Config:
    return load_config_text(CONFIG, CONNECTORS)


def test_identical_queries_are_asked_once_per_cycle() -> None:
    plan = plan_queries(config())
    db = plan.by_connection["db"]
    # won and won_again are the same question: one query (q4) + lost (q4) + won for q3
    assert len(db) == 3
    shared = next(q for q in db if q.cycle.id == "q4" and "won" in q.metrics)
    assert set(shared.metrics) == {"won", "won_again"}
    assert plan.key_for[("won", "q4")] == plan.key_for[("won_again", "q4")]
    assert plan.key_for[("won", "q4")] != plan.key_for[("won", "q3")]
    assert len(plan.by_connection["other"]) == 1
    assert plan.query_count == 4


def test_plan_for_some_metrics_or_key_results_only() -> None:
    plan = plan_queries(config(), metrics={"lost"})
    assert [p.key_result.id for p in plan.key_results] == ["rate"]
    assert sorted(name for name, _ in plan.key_for) == ["lost", "won"]  # all operands of rate
    only = plan_queries(config(), key_results={"backlog"})
    assert list(only.by_connection) == ["other"]


def reading(value: str | None, *, error: Exception | None = None) -> Reading:
    return Reading(
        key="k",
        value=None if value is None else Decimal(value),
        query_text="SELECT …",
        fetched_at=NOW,
        raw_digest="sha256:00",
        error=error,  # type: ignore[arg-type]
    )


def test_expression_value_progress_status_and_provenance() -> None:
    cfg = config()
    rate = cfg.key_result("rate")
    readings = {
        "won": MetricReading("won", "db", reading("3"), "run-1"),
        "lost": MetricReading("lost", "db", reading("7"), "run-1"),
    }
    result = evaluate(rate, cfg.cycles["q4"], readings, NOW)
    assert result.value == Decimal(30)
    assert result.progress == Decimal(1)
    assert result.status is Status.ON_TRACK
    assert [p["metric"] for p in result.provenance] == ["lost", "won"]
    assert result.provenance[0]["run_id"] == "run-1"


def test_division_by_zero_and_failed_readings_give_no_value() -> None:
    cfg = config()
    rate = cfg.key_result("rate")
    zero = {
        "won": MetricReading("won", "db", reading("0"), "r"),
        "lost": MetricReading("lost", "db", reading("0"), "r"),
    }
    result = evaluate(rate, cfg.cycles["q4"], zero, NOW)
    assert result.value is None and result.status is Status.NO_DATA
    assert "division by zero" in (result.error or "")

    failed = {
        "won": MetricReading("won", "db", reading(None, error=QueryError("bad SQL")), "r"),
    }
    result = evaluate(rate, cfg.cycles["q4"], failed, NOW)
    assert not result.ok
    assert "bad SQL" in (result.error or "")
    assert "'lost' was not fetched" in (result.error or "")


def test_decrease_progress_is_exact() -> None:
    cfg = config()
    backlog = cfg.key_result("backlog")
    readings = {"tickets": MetricReading("tickets", "other", reading("80"), "r")}
    result = evaluate(backlog, cfg.cycles["q3"], readings, NOW)
    assert result.progress == Decimal("0.8")  # (200 - 80) / (200 - 50)
