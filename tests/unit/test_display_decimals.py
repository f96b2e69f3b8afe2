"""The dashboard's numbers follow a key result's ``decimals`` when it sets one, else its unit's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from okrsync.api import formatting
from okrsync.api.charts import BurnupChart, burnup_svg


def test_number_uses_the_key_results_decimals_else_the_units() -> None:
    assert formatting.number(Decimal("1234.5"), "USD", 2) == "1,234.50 USD"
    assert formatting.number(Decimal("1234.5"), "USD") == "1,235 USD"  # USD: 0 places
    assert formatting.number(Decimal("87.25"), "%", None) == "87.3%"  # %: 1 place, half-up
    assert formatting.number(Decimal("87.25"), "%", 0) == "87%"
    assert formatting.number(Decimal("7.125"), None, 2) == "7.13"
    assert formatting.number(None, "USD", 2) == "—"


def test_the_burn_up_labels_use_the_decimals() -> None:
    at = datetime(2026, 10, 5, 9, tzinfo=UTC)
    chart = BurnupChart(
        title="Book revenue",
        kind="increase",
        unit="USD",
        cycle_start=date(2026, 10, 1),
        cycle_end=date(2026, 12, 31),
        start=Decimal(0),
        target=Decimal(5000),
        samples=[(at, Decimal("1234.5"))],
        now=at,
        decimals=2,
    )
    svg = burnup_svg(chart)
    assert "latest 1,234.50 USD" in svg
    assert "1,234.50 USD on 2026-10-05 09:00 UTC" in svg
    assert "latest 1,235 USD" in burnup_svg(replace(chart, decimals=None))
