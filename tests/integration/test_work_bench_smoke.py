"""The work-items benchmark at a tiny size: requests counted at the fakes, never timing."""

from __future__ import annotations

import json
from numbers import Number
from pathlib import Path

from benchmarks.work_bench import PHASES, TRACKERS, bound, entry_sizes, main


def test_the_full_workload_spreads_10000_items_with_a_few_epics_of_several_pages() -> None:
    sizes = entry_sizes(1000, 10_000)
    assert len(sizes) == 1000 and sum(sizes) == 10_000
    assert sorted(sizes)[-20:] == [150] * 10 + [250] * 10
    assert min(sizes) >= 2
    assert entry_sizes(9, 60) == [4, 5, 7, 9, 11, 3, 5, 7, 9]  # too few items for epics


def test_the_bounds() -> None:
    # Jira: 100 items a page with fields, 5,000 ids only; an epic of 250 items:
    assert bound("first_read", "jira", [250, 3], [0, 0]) == 3 + 1
    assert bound("reconciliation", "jira", [250, 3], [0, 0]) == 2 + 1  # changes, then ids
    assert bound("reconciliation", "github", [250], [0]) == 3  # search has no ids-only form
    assert bound("warm_refresh", "linear", [250, 3], [0, 0]) == 2  # one request an entry
    assert bound("changed_1pct", "linear", [300], [251]) == 2


def test_smoke_benchmark_counts_requests_against_the_bound_and_the_naive_reread(
    tmp_path: Path,
) -> None:
    result = main(["--size", "9", "--items", "60", "--output", str(tmp_path)])
    assert json.loads((tmp_path / "work_bench.json").read_text()) == result
    assert "| warm refresh, nothing changed |" in (tmp_path / "work_bench.md").read_text()
    assert result["items"] == 60 and result["entries"] == {t: 3 for t in TRACKERS}
    phases = result["phases"]
    assert list(phases) == list(PHASES)
    first, warm = phases["first_read"], phases["warm_refresh"]
    changed, recon = phases["changed_1pct"], phases["reconciliation"]
    naive = phases["naive_full_reread"]
    # Every entry fits one page: the first read and the naive re-read ask once per entry.
    assert first["requests"] == naive["requests"] == {**{t: 3 for t in TRACKERS}, "total": 9}
    assert first["report"]["added"] == naive["report"]["items_read"] == 60
    # A warm refresh asks once per entry, plus Jira's time zone once (GET /myself).
    assert warm["requests"] == {"jira": 4, "github": 3, "linear": 3, "total": 10}
    assert warm["by_path"]["jira"]["GET /rest/api/3/myself"] == 1
    assert (warm["report"]["full_reads"], warm["report"]["changed"]) == (0, 0)
    # The changed items are read, and only they are recorded as changed.
    assert changed["items_changed"] >= 1
    assert changed["report"]["changed"] == changed["items_changed"]
    assert changed["requests"]["total"] == 9
    # The reconciliation: every entry fits one page, so one full read each answers both what
    # changed and what left (an incremental read plus an ids-only read would be two).
    assert (recon["report"]["reconciliations"], recon["report"]["full_reads"]) == (9, 9)
    assert recon["requests"] == recon["bound"] == {**{t: 3 for t in TRACKERS}, "total": 9}
    assert recon["by_path"]["jira"] == {"POST /rest/api/3/search/jql": 3}
    for phase in phases.values():
        assert all(status == "200" for s in phase["statuses"].values() for status in s)
        assert isinstance(phase["seconds"], Number)
    # Nothing changed: the incremental answers are the short ones.
    assert warm["answer_bytes"]["total"] < naive["answer_bytes"]["total"] / 2
    assert first["store_statements"] > 0
    assert len(result["load_average"]["start"]) == 3
