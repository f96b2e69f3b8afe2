"""RESULTS.md's prose is computed from the run's figures: two runs with different figures read
differently, and nothing a run did not measure is claimed. Also the floor model: only the
requests a refresh needs, under the vendors' documented limits, each printed with its source."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from benchmarks.floor import LIMITS, connection_floor, floor_model
from benchmarks.report import complete, markdown
from benchmarks.workload import Needed, generate

LATENCY = 0.05


def size_figures(size: int) -> dict[str, Any]:
    """One size's figures as ``benchmarks.measure`` writes them, at the bound exactly."""
    model = floor_model(generate(size, date(2026, 1, 1)), LATENCY)
    cold: dict[str, int] = dict(model["lower_bound"])
    warm: dict[str, int] = dict(model["lower_bound_warm"])
    return {
        "size": size,
        "latency": LATENCY,
        "mirrored": cold["slack"],
        "config_load": {"seconds": 0.5},
        "cold": {
            "seconds": 2.0,
            "cpu_main_thread": size * 0.0004,
            "requests": cold,
            "errors": 0,
        },
        "warm": {
            "seconds": 1.5,
            "cpu_main_thread": size * 0.0001,
            "requests": warm,
            "errors": 0,
        },
        "naive": {"seconds": 30.0, "requests": {v: n * 20 for v, n in cold.items()}, "errors": 0},
        "peak_rss_mib": 200.0,
        "freshness": {
            "samples": 10,
            "p50": 0.8,
            "p95": 1.2,
            "max": 1.3,
            "metrics_per_event": size // 4,
            "hook_window_seconds": 2.0,
            "delivery_error_count": 0,
        },
        "idle": {
            "seconds": 10.0,
            "cpu_share_process": 0.005,
            "cpu_share_main_thread": 0.0001,
            "ticks": 0,
        },
    }


def results_at_bound() -> dict[str, Any]:
    return {
        "machine": {
            "cores": 2,
            "memory": "4 GiB",
            "python": "3.11",
            "platform": "linux",
            "date": "2026-01-01 00:00 UTC",
        },
        "latency": LATENCY,
        "command": "python -m benchmarks.run --sizes 100,1000",
        "sizes": [size_figures(100), size_figures(1000)],
        "store": {
            "sqlite": {
                "measurements": 1000,
                "load_seconds": 1.0,
                "status_json_seconds": 0.02,
                "history_seconds": 0.001,
            }
        },
        "notes": "API economy: okrsync's requests equal the lower bound at every size.",
        "load_average": {"start": [1.0, 1.0, 1.0], "end": [2.0, 1.5, 1.0]},
    }


def render(results: dict[str, Any]) -> str:
    return markdown(complete(results))


def test_requests_at_the_bound_are_said_to_equal_it() -> None:
    text = render(results_at_bound())
    assert "okrsync's requests equal the lower bound at every size" in text
    verdict_row = next(line for line in text.splitlines() if line.startswith("| requests per"))
    assert verdict_row.endswith("| met |")


def test_requests_above_the_bound_are_never_said_to_equal_it() -> None:
    results = results_at_bound()
    over = results["sizes"][1]["cold"]["requests"]
    over["jira"] += 7  # a run that asked Jira seven times too often
    text = render(results)
    assert "equal the lower bound at every size" not in text
    bound = results["sizes"][1]["lower_bound"]["jira"]
    assert f"above it for jira {bound + 7} vs {bound}" in text
    verdict_row = next(line for line in text.splitlines() if line.startswith("| requests per"))
    assert verdict_row.endswith("| **not met** |")


def test_a_warm_refresh_that_reads_its_cached_catalogs_again_is_above_its_bound() -> None:
    results = results_at_bound()
    results["sizes"][0]["warm"]["requests"]["hubspot"] += 1  # the pipelines read again
    text = render(results)
    assert "equal the lower bound" not in text
    assert "warm" in text and "above it for hubspot" in text


def test_the_hand_written_notes_are_dropped_and_other_figures_change_the_text() -> None:
    first = results_at_bound()
    second = copy.deepcopy(first)
    second["sizes"][1]["naive"]["requests"] = {
        v: n * 50 for v, n in second["sizes"][1]["cold"]["requests"].items()
    }
    second["sizes"][1]["freshness"]["p95"] = 2.5
    a, b = render(first), render(second)
    assert "notes" not in first  # complete() drops them; nothing is appended verbatim
    assert "makes 20x / 20x okrsync's cold requests" in a
    assert "makes 20x / 50x okrsync's cold requests" in b
    fresh_a = next(line for line in a.splitlines() if line.startswith("| freshness"))
    fresh_b = next(line for line in b.splitlines() if line.startswith("| freshness"))
    assert fresh_a.endswith("| met |") and fresh_b.endswith("| **not met** |")
    assert "Load average (1, 5, 15 min) at the start 1.0, 1.0, 1.0" in a


def test_a_refresh_under_its_floor_is_reported_not_hidden() -> None:
    results = results_at_bound()
    assert "No refresh came under its floor." in render(copy.deepcopy(results))
    results["sizes"][0]["warm"]["seconds"] = 0.01  # faster than 50 ms of latency allows
    assert "A refresh came under its floor: warm at 100" in render(results)


def test_each_limit_is_printed_with_its_source() -> None:
    text = render(results_at_bound())
    for name, limit in LIMITS.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert limit.source in row
    assert "10 concurrent requests" in text  # GA4's documented concurrency, not okrsync's 4


def test_the_warm_floor_counts_only_what_a_warm_refresh_needs() -> None:
    workload = generate(10_000, date(2026, 1, 1))
    cold, warm = workload.needed(), workload.needed(warm=True)
    assert cold["hubspot"].setup == 1 and warm["hubspot"].setup == 0  # pipelines read cached
    assert warm["slack"].data == 0
    model = floor_model(workload, LATENCY)
    floor: dict[str, float] = model["floor"]
    assert floor["warm"] < floor["cold"]
    assert sum(workload.lower_bound(warm=True).values()) == sum(
        n.data for v, n in cold.items() if v != "slack"
    )


def test_documented_limits_set_the_connection_floor() -> None:
    # GA4 documents 10 concurrent requests: 20 reports take two waves, not five of four
    assert connection_floor("ga4", Needed(1, 20), LATENCY) == LATENCY + 2 * LATENCY
    # Salesforce publishes no limit on short concurrent requests: one wave after the token
    assert connection_floor("salesforce", Needed(1, 30), LATENCY) == 2 * LATENCY
    # HubSpot search, 5 per second: 11 searches start in three one-second windows
    assert connection_floor("hubspot", Needed(0, 11), LATENCY) == 2.0 + LATENCY
