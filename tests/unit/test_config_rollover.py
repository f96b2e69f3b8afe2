"""Rolling `cycle: current` over in-process gives what loading the config that day would."""

from __future__ import annotations

from datetime import date

from okrsync.config.rollover import rolled_over
from tests.unit.test_config_cycles import SERIES, config


def test_rolling_over_matches_a_reload_on_the_new_day() -> None:
    loaded = config(SERIES, "current", date(2026, 12, 31))
    assert rolled_over(loaded, date(2027, 1, 7)) is None  # Q4 is still closing
    rolled = rolled_over(loaded, date(2027, 1, 8))
    assert rolled is not None
    reloaded = config(SERIES, "current", date(2027, 1, 8))
    assert rolled.objectives == reloaded.objectives
    assert rolled.objectives[0].cycle == "2027-Q1" and rolled.objectives[0].follows_series
    assert rolled.cycles == reloaded.cycles  # Q4 stays declared, Q2 is listed as next
    assert rolled_over(rolled, date(2027, 1, 9)) is None  # rolled once


def test_a_long_pause_skips_to_the_cycle_current_that_day() -> None:
    loaded = config(SERIES, "current", date(2026, 12, 31))
    rolled = rolled_over(loaded, date(2027, 8, 1))
    assert rolled is not None
    assert rolled.objectives[0].cycle == "2027-Q3"
    assert rolled.cycles == config(SERIES, "current", date(2027, 8, 1)).cycles


def test_nothing_rolls_for_objectives_that_name_their_cycle() -> None:
    loaded = config(SERIES, "2026-Q4", date(2026, 12, 31))
    assert rolled_over(loaded, date(2027, 6, 1)) is None
