"""``okrsync cycle``: list the cycles and their lifecycle state, close one early, report on one.

Registered on the main app by :mod:`okrsync.cli`. Like every command there, each imports what it
needs when it runs, so ``okrsync --help`` pays for none of it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from okrsync.config import Config

cycle_app = typer.Typer(
    help="Cycles: their state, closing one, its report.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $OKRSYNC_CONFIG or okrsync.yaml)."),
]


class ReportFormat(StrEnum):
    MD = "md"
    HTML = "html"
    JSON = "json"


def _config(config: Path | None) -> Config:
    from okrsync.app import load
    from okrsync.cli import settings_for, user_errors
    from okrsync.plugins import load_registry

    settings = settings_for(config)
    with user_errors():
        return load(settings, load_registry())


def _known(config: Config, cycle_id: str) -> None:
    from okrsync.cli import EXIT_CONFIG, error
    from okrsync.config.reporting import suggest

    if cycle_id not in config.cycles:
        error(f"unknown cycle {cycle_id!r}{suggest(cycle_id, list(config.cycles))}")
        raise typer.Exit(EXIT_CONFIG)


@cycle_app.command("list")
def list_cycles(
    config: ConfigOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each cycle with its dates and state (upcoming, active, closing, closed)."""
    from rich.table import Table

    from okrsync.cli import out, store_session
    from okrsync.engine.closeout import closed_in_store
    from okrsync.read_models.cycle_states import cycles_now

    loaded = _config(config)
    now = datetime.now(UTC)
    with store_session() as session:
        closed = closed_in_store(session) if session is not None else {}
    rows = [
        {
            "id": found.cycle.id,
            "start": found.cycle.start.isoformat(),
            "end": found.cycle.end.isoformat(),
            "state": found.state.value,
            "closes_at": found.closes_at.isoformat(),
            "closed_at": None if found.closed_at is None else found.closed_at.isoformat(),
            "series": found.cycle.series,
        }
        for found in cycles_now(loaded, closed, now)
    ]
    if json_out:
        sys.stdout.write(json.dumps({"cycles": rows}, indent=2) + "\n")
        return
    table = Table("cycle", "start", "end", "state", "closes / closed")
    for row in rows:
        table.add_row(
            row["id"], row["start"], row["end"], row["state"], row["closed_at"] or row["closes_at"]
        )
    out.print(table)


@cycle_app.command("close")
def close_cycle(
    cycle_id: Annotated[str, typer.Argument(metavar="ID", help="The cycle to close now.")],
    config: ConfigOption = None,
) -> None:
    """Close a cycle now (before its grace period ends): freeze its record, tell its mirrors."""
    from okrsync.app import App
    from okrsync.cli import open_app, out, run_async
    from okrsync.engine.closeout import COMMAND, CycleCloser

    app_ = open_app(config)
    _known(app_.config, cycle_id)

    async def work(a: App) -> Any:
        a.apply_definitions()
        report = CycleCloser(a.engine, a.config, clock=a.clock).close(cycle_id, by=COMMAND)
        delivered = (await a.dispatcher.dispatch_due()).delivered if report.closed_now else 0
        return report, delivered

    report, delivered = run_async(app_, work)
    if not report.closed_now:
        out.print(
            f"cycle {cycle_id} was closed already, at {report.closed_at.isoformat()}",
            soft_wrap=True,
        )
        return
    out.print(
        f"closed cycle {cycle_id}: {report.key_results} key results and {report.objectives} "
        f"objectives frozen, {report.finals_queued} final pushes queued, {delivered} delivered",
        soft_wrap=True,
    )


@cycle_app.command("report")
def report_cycle(
    cycle_id: Annotated[str, typer.Argument(metavar="ID", help="The cycle to report on.")],
    format_: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="md, html or json.")
    ] = ReportFormat.MD,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    config: ConfigOption = None,
) -> None:
    """Objectives, key results, final (or current) scores, confidence trend; burn-up charts in
    the HTML."""
    from okrsync.api.cycle_report import report_html, report_markdown
    from okrsync.cli import EXIT_FAILED, error, store_session
    from okrsync.read_models.cycle_report import build_cycle_report

    loaded = _config(config)
    _known(loaded, cycle_id)
    now = datetime.now(UTC)
    with store_session() as session:
        if session is None:
            error("nothing in the store yet: run `okrsync sync` first")
            raise typer.Exit(EXIT_FAILED)
        report = build_cycle_report(session, loaded, cycle_id, now)
    chosen = ReportFormat.JSON if json_out else format_
    if chosen is ReportFormat.JSON:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    elif chosen is ReportFormat.HTML:
        sys.stdout.write(report_html(report, now))
    else:
        sys.stdout.write(report_markdown(report))
