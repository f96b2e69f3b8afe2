"""Burn-up chart geometry: dates and values to SVG coordinates, without a browser."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from okrsync.api.charts import (
    BurnupChart,
    Plot,
    Scale,
    burnup_scale,
    burnup_svg,
    cycle_window,
    nice_ticks,
    pace_line,
    references,
    sample_points,
    tick_label,
)

PLOT = Plot(
    width=500, height=300, left=50, right=10, top=20, bottom=30
)  # plot box 50..490 x 20..270
START, END = date(2026, 10, 1), date(2026, 12, 30)  # 91 days, so day 0 + 45.5 d is the middle
D = Decimal
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def scale_for(kind: str, start: str, target: str, samples: list[tuple[datetime, Decimal]]) -> Scale:
    refs = references(kind, D(start), D(target))
    return burnup_scale(PLOT, START, END, kind, refs, samples)


def test_the_cycle_covers_whole_utc_days() -> None:
    assert cycle_window(START, END) == (at(10, 1), at(12, 31))


def test_the_pace_line_runs_from_start_on_day_one_to_target_at_the_end() -> None:
    scale = scale_for("increase", "0", "100", [])
    first, last = pace_line(scale, START, END, D(0), D(100))
    span = 100 * (1 + 2 * 0.1)  # 10 % headroom beyond start and target
    assert (first.x, last.x) == (50, 490)
    assert first.y == pytest.approx(270 - 10 / span * 250, abs=0.01)
    assert last.y == pytest.approx(270 - 110 / span * 250, abs=0.01)
    assert first.y > last.y  # up the screen


def test_points_are_placed_by_date_and_value() -> None:
    samples = [(at(10, 1), D(0)), (at(11, 15, 12), D(50)), (at(12, 31), D(100))]
    scale = scale_for("increase", "0", "100", samples)
    points = sample_points(scale, samples)
    pace = pace_line(scale, START, END, D(0), D(100))
    assert [p.x for p in points] == [50, 270, 490]  # 1 Oct, halfway, the end of 30 Dec
    assert points[0] == pace[0] and points[2] == pace[1]  # exactly on pace at both ends
    assert points[1].y == pytest.approx((pace[0].y + pace[1].y) / 2, abs=0.01)


def test_unclamped_over_achievement_is_clipped_to_the_chart() -> None:
    samples = [(at(11, 1), D(150)), (at(11, 2), D(-80))]  # 150 % and well below start
    scale = scale_for("increase", "0", "100", samples)
    high, low = sample_points(scale, samples)
    assert high.y == PLOT.y_top and low.y == PLOT.y_bottom
    assert scale.y(D(100)) > PLOT.y_top  # the target itself stays inside, below the headroom


def test_a_cycle_with_one_measurement() -> None:
    samples = [(at(10, 20), D(12))]
    svg = burnup_svg(chart("increase", "0", "40", samples, now=at(11, 1)))
    (points,) = re.findall(r'<polyline class="actual" points="([^"]*)"', svg)
    assert len(points.split()) == 1
    assert svg.count('<circle class="dot"') == 1  # the lone value is still visible
    assert 'class="held"' in svg  # and held until today


def test_decrease_pace_runs_downhill_from_start_to_the_lower_target() -> None:
    samples = [(at(10, 1), D(400)), (at(11, 15, 12), D(325))]
    scale = scale_for("decrease", "400", "250", samples)
    first, last = pace_line(scale, START, END, D(400), D(250))
    assert first.y < last.y  # 400 is drawn higher than 250
    on_pace = sample_points(scale, samples)[1]
    assert on_pace.y == pytest.approx((first.y + last.y) / 2, abs=0.01)
    beaten = sample_points(scale, [(at(12, 1), D(100))])[0]  # far below the target: clipped
    assert beaten.y == PLOT.y_bottom


def test_values_outside_the_cycle_widen_the_time_axis() -> None:
    samples = [(at(9, 1), D(5)), (at(10, 15), D(10))]
    scale = scale_for("increase", "0", "100", samples)
    assert scale.begin == at(9, 1) and scale.end == at(12, 31)
    assert sample_points(scale, samples)[0].x == PLOT.x_min


def test_threshold_kinds_draw_flat_reference_lines_and_include_their_values() -> None:
    samples = [(at(10, 2), D("99.95")), (at(10, 9), D("99.7"))]
    svg = burnup_svg(
        BurnupChart("uptime", "stay_above", "%", START, END, None, D("99.9"), samples, at(11, 1))
    )
    (pace,) = re.findall(r'<line class="pace" x1="[^"]*" y1="([^"]*)" x2="[^"]*" y2="([^"]*)"', svg)
    assert pace[0] == pace[1]
    (points,) = re.findall(r'<polyline class="actual" points="([^"]*)"', svg)
    ys = [float(p.split(",")[1]) for p in points.split()]
    assert all(PLOT.y_top < y < PLOT.y_bottom for y in ys)  # not clipped: the domain covers them


def test_no_values_yet_still_draws_the_pace_line() -> None:
    svg = burnup_svg(chart("increase", "0", "10", [], now=at(10, 5)))
    assert "<polyline" not in svg and "no values yet" in svg and 'class="pace"' in svg


def test_text_in_the_chart_is_escaped() -> None:
    svg = burnup_svg(chart("increase", "0", "10", [(at(10, 2), D(1))], unit="<b>"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_ticks_are_round_numbers_with_short_labels() -> None:
    assert nice_ticks(-25_000, 275_000) == [0, 50_000, 100_000, 150_000, 200_000, 250_000]
    assert [tick_label(v, 50_000) for v in (0, 50_000, 250_000)] == ["0", "50k", "250k"]
    assert nice_ticks(99.895, 99.955)[0] == pytest.approx(99.9)
    assert tick_label(99.9, 0.01) == "99.90"


def chart(
    kind: str,
    start: str,
    target: str,
    samples: list[tuple[datetime, Decimal]],
    now: datetime = NOV_1,
    unit: str | None = None,
) -> BurnupChart:
    return BurnupChart(
        title="t",
        kind=kind,
        unit=unit,
        cycle_start=START,
        cycle_end=END,
        start=D(start),
        target=D(target),
        samples=samples,
        now=now,
        plot=PLOT,
    )
