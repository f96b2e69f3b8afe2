"""The start-up benchmark at a smoke size: structure and the report computed from the figures."""

from __future__ import annotations

import json
from numbers import Number
from pathlib import Path

from benchmarks.startup import main, markdown


def test_smoke_startup_benchmark_produces_every_figure(tmp_path: Path) -> None:
    results = main(["--repeat", "1", "--heavy-repeat", "1", "--size", "50", "--out", str(tmp_path)])
    figures = results["figures"]["current"]
    assert {"help", "validate_starter", "validate_workload", "status_starter_sqlite"} <= set(
        figures
    )
    assert "status_workload_sqlite" in figures
    for figure in figures.values():
        for key in ("best_s", "median_s", "best_cpu_s", "peak_rss_mib"):
            assert isinstance(figure[key], Number) and figure[key] > 0
    # status --json printed the whole store: 50 key results' worth, not an empty document
    assert figures["status_workload_sqlite"]["output_bytes"] > 50 * 300
    saved = json.loads((tmp_path / "startup.json").read_text())
    assert saved["figures"] == results["figures"]
    assert (tmp_path / "STARTUP.md").read_text() == markdown(saved)


def test_report_says_which_targets_are_met_from_the_figures() -> None:
    def figure(best: float, mib: float = 50.0) -> dict[str, float]:
        return {"best_s": best, "median_s": best, "best_cpu_s": best, "peak_rss_mib": mib}

    results = {
        "machine": {"cores": 2, "python": "3.11", "platform": "linux"},
        "run_at": "now",
        "size": 10_000,
        "repeat": 5,
        "heavy_repeat": 3,
        "load_average": [1.0, 1.0],
        "figures": {
            "current": {
                "help": figure(0.2),
                "validate_workload": figure(2.0),
                "status_workload_sqlite": figure(0.5, mib=250),
            },
            "baseline": {"help": figure(1.0)},
        },
    }
    text = markdown(results)
    assert "| 5.0x | < 0.3 s: met |" in text
    assert "< 1.5 s: not met" in text
    assert "< 1 s, < 200 MiB: not met" in text  # fast enough, but too much memory
    assert "Targets met: 1 of 3" in text
    assert "PostgreSQL was not reachable" in text


def test_a_before_figure_that_did_less_work_is_not_compared() -> None:
    def figure(best: float, output: int) -> dict[str, float]:
        return {
            "best_s": best,
            "median_s": best,
            "best_cpu_s": best,
            "peak_rss_mib": 50.0,
            "output_bytes": output,
        }

    results = {
        "machine": {"cores": 2, "python": "3.11", "platform": "linux"},
        "run_at": "now",
        "size": 10_000,
        "repeat": 5,
        "heavy_repeat": 3,
        "load_average": [1.0, 1.0],
        "figures": {
            "current": {"help": figure(0.2, 900), "status_workload_sqlite": figure(0.9, 5_000)},
            # the older okrsync found nothing to print in the store: 44 bytes
            "baseline": {"help": figure(1.0, 3_000), "status_workload_sqlite": figure(0.4, 44)},
        },
    }
    text = markdown(results)
    assert "| 5.0x | < 0.3 s: met |" in text  # help printed less, but not under half
    assert "(SQLite) | not comparable | 0.900 |" in text
    assert "(44 bytes before, 5,000 after)" in text
