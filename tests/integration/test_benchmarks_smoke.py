"""The benchmark harness at its smoke size: structure only, never timing."""

from __future__ import annotations

from numbers import Number
from pathlib import Path

from benchmarks.run import main


def test_smoke_benchmark_produces_every_figure(tmp_path: Path) -> None:
    results = main(["--smoke", "--output", str(tmp_path)])
    assert (tmp_path / "RESULTS.md").exists() and (tmp_path / "results.json").exists()
    (size,) = results["sizes"]
    for phase in ("cold", "warm"):
        for key in ("seconds", "cpu_main_thread", "cpu_process"):
            assert isinstance(size[phase][key], Number)
    okrsync_requests = sum(size["cold"]["requests"].values())
    naive_requests = sum(size["naive"]["requests"].values())
    assert okrsync_requests > 0
    assert okrsync_requests <= naive_requests
    assert size["cold"]["errors"] == 0 and size["naive"]["errors"] == 0
    assert isinstance(size["floor"]["cold"], Number)
    assert isinstance(size["freshness"]["p95"], Number)
    assert isinstance(size["idle"]["cpu_share_process"], Number)
    assert isinstance(size["peak_rss_mib"], Number)
    sqlite = results["store"]["sqlite"]
    assert isinstance(sqlite["status_json_seconds"], Number)
    assert isinstance(sqlite["history_seconds"], Number)
