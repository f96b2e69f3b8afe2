"""The steady-state benchmark at its smoke size (seconds-long schedules): structure only, never
timing, since the windows it counts requests in are wall-clock ones on a shared machine."""

from __future__ import annotations

from pathlib import Path

from benchmarks.steady_state import VENDORS, main


def test_steady_state_smoke_writes_its_figures_and_its_section(tmp_path: Path) -> None:
    result = main(["--smoke", "--ticks", "2", "--output", str(tmp_path), "--name", "smoke"])
    assert (tmp_path / "smoke.json").exists()
    text = (tmp_path / "SMOKE.md").read_text()
    assert text.startswith("## Steady state")
    assert result["daemon_exit"] == 0 and result["daemon_errors_logged"] == 0
    assert len(result["windows"]) == 2
    for window in result["windows"]:
        assert set(window["requests"]) == set(window["bound"]) == set(VENDORS)
        assert all(isinstance(n, int) for n in window["requests"].values())
    assert sum(result["cold"]["requests"].values()) > 0  # the fakes were really asked
    assert str(result["steady"]["all_bound"]) in text  # the prose comes from the figures
