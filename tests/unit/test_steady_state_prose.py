"""The steady-state section's verdict is computed from the windows' figures: requests at the
bound read as met, requests above it name the vendor and are not met, replicas are counted."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.steady_state import VENDORS, markdown


def run(requests: dict[str, int], bound: dict[str, int], **extra: Any) -> dict[str, Any]:
    windows = [
        {"start": f"2026-01-01T00:0{i}:00+00:00", "requests": requests, "bound": bound}
        for i in range(1, 4)
    ]
    totals = {v: 3 * requests[v] for v in VENDORS}
    bounds = {v: 3 * bound[v] for v in VENDORS}
    return {
        "command": "python -m benchmarks.steady_state",
        "size": 1000,
        "schedules": ["every 1m"],
        "window_seconds": 60.0,
        "ticks": 3,
        "latency": 0.05,
        "store": "postgresql",
        "okrsync_path": None,
        "restarts": 0,
        "daemon_exit": 0,
        "daemon_errors_logged": 0,
        "cold": {"start": "2026-01-01T00:00:00+00:00", "requests": dict.fromkeys(VENDORS, 5)},
        "windows": windows,
        "steady": {
            "requests": totals,
            "bound": bounds,
            "all_requests": sum(totals.values()),
            "all_bound": sum(bounds.values()),
        },
        **extra,
    }


BOUND = {"jira": 10, "salesforce": 2, "hubspot": 2, "ga4": 1}


def test_at_the_bound_the_target_is_met() -> None:
    text = markdown(run(dict(BOUND), BOUND))
    assert "Target (requests per tick ≤ the lower bound + 5%): met, in every window; 1.00x" in text
    assert "Every vendor stayed at or below its bound." in text
    assert "Windows (of 3) in which each schedule ticked: `every 1m` 3." in text
    assert "The load average was not recorded by this run." in text


def test_above_the_bound_the_vendor_is_named_and_the_target_not_met() -> None:
    over = copy.deepcopy(BOUND)
    over["jira"] = 20  # every JQL asked twice per tick
    text = markdown(run(over, BOUND))
    assert ": not met; 1.67x" in text
    assert "Above the bound: jira (60 vs 30)." in text
    assert "met, in every window" not in text


def test_replicas_and_their_runs_and_the_load_are_reported() -> None:
    text = markdown(
        run(
            dict(BOUND),
            BOUND,
            replicas=2,
            runs_per_replica={"r1": 7, "r2": 5},
            daemon_exits={"r1": 0, "r2": 0},
            load_average={"start": [1.5, 1.0, 0.5], "end": [2.0, 1.5, 1.0]},
            replica_crashes=[
                {
                    "replica": "r1",
                    "at": "2026-01-01T00:00:30+00:00",
                    "exit": 1,
                    "error": "UniqueViolation: duplicate key",
                }
            ],
        )
    )
    assert "2 `okrsync run` processes (replicas)" in text
    assert "runs finished per replica: r1 7, r2 5" in text
    assert "Load average (1, 5, 15 min) at the start 1.5, 1.0, 0.5" in text
    assert "okrsync run exited 1 time(s) and was started again" in text
    assert "r1 at 00:00:30, exit 1, UniqueViolation: duplicate key" in text


def test_a_late_tick_meets_the_target_over_the_run_but_not_in_every_window() -> None:
    result = run(dict(BOUND), BOUND)
    late = dict.fromkeys(VENDORS, 0)
    doubled = {v: 2 * n for v, n in BOUND.items()}
    result["windows"][1]["requests"] = late  # the tick of window 2 ran in window 3
    result["windows"][2]["requests"] = doubled
    text = markdown(result)
    assert "met over the whole run, not in every window; 1.00x" in text
    assert "(the highest window 2.00x, at 00:03:00)" in text
