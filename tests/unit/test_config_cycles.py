"""The cycles section: explicit cycles and generated series, close_after, `cycle: current`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from okrsync.config import Config, load_config_text
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS, VALID_ENV

HEAD = """\
version: 1
connections:
  warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}
metrics:
  won: {connection: warehouse, query: "SELECT 1"}
"""


def config(cycles: str, objective_cycle: str, today: date, defaults: str = "") -> Config:
    text = HEAD + defaults + cycles + _objective(objective_cycle)
    return load_config_text(text, CONNECTORS, environ=VALID_ENV, today=today)


def _objective(cycle: str) -> str:
    return f"""\
objectives:
  - id: revenue
    title: Revenue
    cycle: {cycle}
    key_results:
      - {{id: bookings, title: Bookings, metric: won, kind: increase, start: 0, target: 10}}
"""


def errors(cycles: str, objective_cycle: str = "2026-Q4", defaults: str = "") -> list[str]:
    text = HEAD + defaults + cycles + _objective(objective_cycle)
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(
            text, CONNECTORS, environ=VALID_ENV, today=date(2026, 11, 5), secrets_dir=Path("/no")
        )
    return [e.render() for e in caught.value.errors]


SERIES = """\
cycles:
  - {id: 2026-Q3, start: 2026-07-01, end: 2026-09-30, close_after: 2d}
  - {every: quarter, from: 2026-10-01, id: "{year}-Q{quarter}"}
"""


def test_explicit_and_series_cycles_across_a_year_boundary() -> None:
    loaded = config(SERIES, "current", date(2026, 12, 31))
    assert list(loaded.cycles) == ["2026-Q3", "2026-Q4", "2027-Q1"]
    q3, q4, q1 = loaded.cycles.values()
    assert q3.close_after == timedelta(days=2) and q3.series is None
    assert (q4.start, q4.end, q4.series) == (
        date(2026, 10, 1),
        date(2026, 12, 31),
        "{year}-Q{quarter}",
    )
    assert (q1.start, q1.end) == (date(2027, 1, 1), date(2027, 3, 31))
    assert q4.close_after == timedelta(days=7)  # the default
    assert loaded.objectives[0].cycle == "2026-Q4"
    assert loaded.objectives[0].follows_series


def test_current_stays_on_a_closing_cycle_and_rolls_over_once_it_closed() -> None:
    # 2027-01-05: Q4 ended on 12-31 and is closing until 01-08; objectives stay with it
    assert config(SERIES, "current", date(2027, 1, 5)).objectives[0].cycle == "2026-Q4"
    later = config(SERIES, "current", date(2027, 1, 8))
    assert later.objectives[0].cycle == "2027-Q1"
    assert "2026-Q4" in later.cycles  # the closed one stays declared, for its record
    assert "2027-Q2" in later.cycles


def test_defaults_close_after_applies_to_series_and_cycles() -> None:
    loaded = config(SERIES, "current", date(2027, 1, 2), defaults="defaults: {close_after: 1d}\n")
    assert loaded.cycles["2026-Q3"].close_after == timedelta(days=2)  # its own wins
    assert loaded.cycles["2027-Q1"].close_after == timedelta(days=1)
    assert loaded.objectives[0].cycle == "2027-Q1"  # Q4 closed on 01-02 with a 1-day grace


def test_monthly_series_names_months_zero_padded() -> None:
    monthly = 'cycles:\n  - {every: month, from: 2026-11-01, id: "{year}-{month}"}\n'
    loaded = config(monthly, "2026-12", date(2026, 12, 3))
    assert list(loaded.cycles) == ["2026-11", "2026-12", "2027-01"]


def test_refusals_name_file_line_and_key() -> None:
    found = errors(
        """\
cycles:
  - {every: quarter, from: 2026-11-01, id: "{year}-Q{quarter}"}
  - {every: fortnight, from: 2026-10-01, id: "{year}"}
  - {every: month, from: 2026-10-01, id: "{year}-{week}"}
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31, close_after: soon}
"""
    )
    assert any(
        e.startswith(
            "<config>:7: cycles[0].from: from (2026-11-01) must be the first day of a quarter"
        )
        for e in found
    ), found
    assert any(e.startswith("<config>:8: cycles[1].every:") and "month" in e for e in found), found
    assert any("<config>:9: cycles[2].id: unknown placeholder {week}" in e for e in found), found
    assert any(e.startswith("<config>:10: cycles[3].close_after:") for e in found), found


def test_series_ids_that_repeat_or_clash_are_refused() -> None:
    found = errors(
        """\
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
  - {every: quarter, from: 2026-10-01, id: "{year}-Q{quarter}"}
"""
    )
    assert any("cycles[1].id: duplicate cycle id '2026-Q4'" in e for e in found), found


def test_current_needs_exactly_one_series() -> None:
    found = errors(
        "cycles:\n  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}\n",
        objective_cycle="current",
    )
    assert any("objectives[0].cycle: unknown cycle 'current'" in e for e in found), found
    found = errors(
        'cycles:\n  - {every: quarter, from: 2026-10-01, id: "A{year}-Q{quarter}"}\n'
        '  - {every: half, from: 2026-07-01, id: "B{year}-H{half}"}\n',
        objective_cycle="current",
    )
    assert any("unknown cycle 'current'" in e for e in found), found


def test_a_cycle_may_not_be_called_current() -> None:
    found = errors("cycles:\n  - {id: current, start: 2026-10-01, end: 2026-12-31}\n")
    assert any("cycles[0].id: 'current' is reserved" in e for e in found), found
