"""The progress line of `sync`, `plan` and the demo's set-up: drawn for a person at a terminal,
never into a pipe or `--json` output, and log lines go above it instead of onto its end."""

from __future__ import annotations

import io

import structlog
from rich.console import Console

from okrsync.cli_progress import activity, wanted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_only_on_a_terminal_and_never_with_json() -> None:
    assert wanted(stream=Terminal())
    assert not wanted(stream=Terminal(), json_out=True)
    assert not wanted(stream=io.StringIO())  # piped or redirected


def test_a_terminal_sees_each_step() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with activity("sync: 3 metrics", enabled=True, console=console) as step:
        console.print("first")  # forces a refresh while the first step shows
        step("sync: delivering")
        console.print("second")
    drawn = screen.getvalue()
    assert "sync: 3 metrics" in drawn and "sync: delivering" in drawn


def test_quiet_draws_nothing() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True)
    with activity("sync", enabled=False, console=console) as step:
        step("still nothing")
    assert screen.getvalue() == ""


def test_log_lines_go_above_the_line_while_it_shows() -> None:
    logs, screen = io.StringIO(), io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.PrintLoggerFactory(logs),
    )
    console = Console(file=screen, force_terminal=True, width=100, stderr=True)
    with activity("plan: reading 2 metrics", enabled=True, console=console):
        structlog.get_logger().info("run_started", queries=2)
    structlog.get_logger().info("after")
    assert "event='run_started' queries=2" in screen.getvalue()  # printed by the display
    assert logs.getvalue() == "event='after'\n"  # and the log's own stream again afterwards
