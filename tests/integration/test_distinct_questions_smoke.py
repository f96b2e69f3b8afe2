"""The distinct-questions benchmark at a tiny size: structure and counts only, never timing."""

from __future__ import annotations

import json
from datetime import date
from numbers import Number
from pathlib import Path

from benchmarks.distinct_questions import main, workload


def test_every_key_result_asks_its_own_question() -> None:
    load = workload(1000, date(2026, 12, 7))
    assert load.distinct["jira"] == 1000


def test_smoke_benchmark_counts_the_same_requests_for_okrsync_and_the_naive_script(
    tmp_path: Path,
) -> None:
    result = main(["--size", "12", "--latency", "0.01", "--output", str(tmp_path)])
    assert (tmp_path / "distinct_questions.md").exists()
    assert json.loads((tmp_path / "distinct_questions.json").read_text()) == result
    okrsync, naive = result["okrsync"], result["naive"]
    # One search per distinct JQL, counted at the fake (429s included): nothing else is needed.
    assert okrsync["requests"] == naive["requests"] == 12
    assert okrsync["statuses"] == naive["statuses"] == {"200": 12}
    assert okrsync["peak_in_flight"] <= okrsync["max_concurrency"]
    assert naive["peak_in_flight"] <= naive["max_concurrency"] == 4
    for figure in ("seconds", "cpu_seconds", "fake_cpu_seconds", "floor_seconds"):
        assert isinstance(okrsync[figure], Number) and isinstance(naive[figure], Number)
    assert len(result["load_average"]["start"]) == len(result["load_average"]["end"]) == 3
