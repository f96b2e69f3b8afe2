"""`okrsync init`'s starter: the quarter of the day it is written, and an editor's schema line."""

from __future__ import annotations

from datetime import date

import pytest

from okrsync.examples import example, quarter, starter_config


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2027, 1, 1), ("2027-Q1", date(2027, 1, 1), date(2027, 3, 31))),
        (date(2028, 2, 29), ("2028-Q1", date(2028, 1, 1), date(2028, 3, 31))),
        (date(2027, 6, 30), ("2027-Q2", date(2027, 4, 1), date(2027, 6, 30))),
        (date(2027, 8, 15), ("2027-Q3", date(2027, 7, 1), date(2027, 9, 30))),
        (date(2027, 12, 31), ("2027-Q4", date(2027, 10, 1), date(2027, 12, 31))),
    ],
)
def test_the_quarter_of_a_day(today: date, expected: tuple[str, date, date]) -> None:
    assert quarter(today) == expected


def test_the_starter_uses_the_quarter_of_today_and_no_date_of_its_own() -> None:
    assert "2026" not in example("starter")
    text = starter_config(date(2029, 5, 17))
    assert "{id: 2029-Q2, start: 2029-04-01, end: 2029-06-30}" in text
    assert "cycle: 2029-Q2\n" in text
    assert "__" not in text
    assert not text.startswith("# yaml-language-server")


def test_the_schema_line_comes_first() -> None:
    text = starter_config(date(2029, 5, 17), schema="okrsync.schema.json")
    first, second = text.splitlines()[:2]
    assert first == "# yaml-language-server: $schema=okrsync.schema.json"
    assert second.startswith("# okrsync config:")
