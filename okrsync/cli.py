"""The ``okrsync`` command line. Config errors print file, line and key, exit 2, no traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from okrsync.cli_cycles import cycle_app
from okrsync.cli_deliveries import deliveries_app
from okrsync.cli_options import DatabaseUrlOption
from okrsync.domain.numbers import display_number
from okrsync.domain.statuses import ConnectionStatus
from okrsync.errors import ConfigError, ConfigErrors, OkrsyncError
from okrsync.token_cli import token_app

# Each command imports what it needs when it runs: ``--help`` and ``validate`` must not pay for
# the store (SQLAlchemy, Alembic), the HTTP server or the connectors' fakes (issue 13).
if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlmodel import Session

    from okrsync.app import App
    from okrsync.redaction import Redactor
    from okrsync.settings import Settings
    from okrsync.store.tables import KeyResultRow
    from okrsync.store.views import ObjectiveView

# Help and usage errors in click's plain layout: typer's Rich layout imports Rich's Markdown
# renderer (markdown-it), which cost more than the rest of `okrsync --help` (issue 13).
app = typer.Typer(
    name="okrsync",
    help="Keep OKR key results current from where work happens; mirror progress back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Store maintenance.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(cycle_app, name="cycle")
app.add_typer(deliveries_app, name="deliveries")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"okrsync {version('okrsync')}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Keep OKR key results current from where work happens; mirror progress back."""


out = Console()
# Errors are one line each, never wrapped (CI logs and `2> file` are not terminals), and their
# text is never read as Rich markup: it quotes the user's YAML.
err = Console(stderr=True, soft_wrap=True)


def error(message: str, label: str = "error") -> None:
    err.print(Text.assemble((label, "red"), " ", message), highlight=False)


T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $OKRSYNC_CONFIG or okrsync.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

EXIT_CONFIG = 2
EXIT_FAILED = 1


def settings_for(config: Path | None, database_url: str | None = None) -> Settings:
    from pydantic import SecretStr

    from okrsync.settings import load_settings

    with user_errors():
        settings = load_settings()
    if config is not None:
        settings = settings.model_copy(update={"config": config})
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": SecretStr(database_url)})
    return settings


@contextmanager
def user_errors(redactor: Redactor | None = None) -> Iterator[None]:
    """Turn okrsync's own errors into a clear message and an exit code; never a traceback."""
    try:
        yield
    except ConfigErrors as exc:
        for problem in exc.errors:
            error(problem.render())
        err.print(f"{len(exc.errors)} error(s) in the config", style="red", markup=False)
        raise typer.Exit(EXIT_CONFIG) from None
    except ConfigError as exc:
        error(exc.render())
        raise typer.Exit(EXIT_CONFIG) from None
    except OkrsyncError as exc:
        text = redactor.redact(str(exc)) if redactor else str(exc)
        error(text)
        raise typer.Exit(EXIT_FAILED) from None


def open_app(config: Path | None, database_url: str | None = None) -> App:
    from okrsync.app import App
    from okrsync.logging import configure_logging
    from okrsync.redaction import Redactor

    settings = settings_for(config, database_url)
    redactor = Redactor([settings.database_url.get_secret_value()])
    configure_logging(redactor, fmt=settings.log_format, level=settings.log_level)
    with user_errors(redactor):
        return App.open(settings, redactor=redactor)


def run_async(app_: App, work: Callable[[App], Any]) -> Any:
    import asyncio

    async def main() -> Any:
        try:
            return await work(app_)
        finally:
            await app_.aclose()

    with user_errors(app_.redactor):
        return asyncio.run(main())


def fmt_decimal(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "—"
    quantized = value.quantize(Decimal(1).scaleb(-places))
    text = f"{quantized:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def bar(progress: Decimal | None, width: int = 20) -> str:
    if progress is None:
        return "·" * width
    shown = max(Decimal(0), min(Decimal(1), progress))
    filled = int((shown * width).to_integral_value())
    return "█" * filled + "░" * (width - filled)


STATUS_STYLE = {"on_track": "green", "at_risk": "yellow", "off_track": "red", "no_data": "dim"}


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter config.")] = Path(
        "okrsync.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter config to edit (this quarter as its cycle) and its JSON Schema beside it."""
    from okrsync.examples import write_starter

    if path.exists() and not force:
        error(f"{path} exists; use --force to overwrite it")
        raise typer.Exit(EXIT_FAILED)
    schema = write_starter(path, force=force)
    if schema is not None:
        out.print(f"wrote {schema} (editors read it for completion: see the config's first line)")
    out.print(f"wrote {path}; edit it, then run: okrsync validate --config {path}")


@app.command()
def validate(config: ConfigOption = None) -> None:
    """Check the config: syntax, fields, references, expressions, schedules."""
    from okrsync.config import load_config
    from okrsync.plugins import load_registry

    settings = settings_for(config)
    with user_errors():
        registry = load_registry()
        # okrsync.app.load, without importing the wiring (the store, the engine) to read YAML
        loaded = load_config(settings.config, registry.connectors, secrets_dir=settings.secrets_dir)
    krs = loaded.key_results()
    mirrors = sum(len(kr.mirrors) for kr in krs) + sum(len(o.mirrors) for o in loaded.objectives)
    out.print(
        f"[green]ok[/green] {settings.config}: {len(loaded.connections)} connections, "
        f"{len(loaded.metrics)} metrics, {len(loaded.objectives)} objectives, "
        f"{len(krs)} key results, {mirrors} mirrors"
    )


@app.command()
def plan(
    config: ConfigOption = None,
    fetch: Annotated[bool, typer.Option(help="Read the sources to show value changes.")] = True,
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 0: no changes, 1: an error (a query failed), 2: changes.",
        ),
    ] = False,
) -> None:
    """Dry run: what would be fetched, changed and pushed. Writes nothing, pushes nothing."""
    import asyncio

    from okrsync.app import load
    from okrsync.cli_progress import activity
    from okrsync.cli_progress import wanted as progress_wanted
    from okrsync.engine.plan_report import build_plan, plan_exit_code
    from okrsync.logging import configure_logging
    from okrsync.plugins import load_registry
    from okrsync.redaction import Redactor

    with errors_exit_1(detailed_exitcode):  # 2 says "changes" to a pipeline, never an error
        settings = settings_for(config, database_url)
    redactor = Redactor([settings.database_url.get_secret_value()])
    configure_logging(redactor, fmt=settings.log_format, level="warning")
    with errors_exit_1(detailed_exitcode), user_errors(redactor):
        registry = load_registry()
        loaded = load(settings, registry)
        redactor.add(loaded.secret_values())
        with activity(
            f"plan: reading {len(loaded.metrics)} metrics" if fetch else "plan",
            enabled=progress_wanted(json_out=json_out),
        ):
            result = asyncio.run(build_plan(settings, loaded, registry, redactor, fetch=fetch))
    if json_out:
        out.print_json(json.dumps(result.as_json()))
    else:
        result.print(out)
    raise typer.Exit(plan_exit_code(result, detailed=detailed_exitcode))


@contextmanager
def errors_exit_1(detailed: bool) -> Iterator[None]:
    """With ``--detailed-exitcode`` every error exits 1 (a config error too, usually 2)."""
    try:
        yield
    except typer.Exit as exc:
        if detailed and exc.exit_code == EXIT_CONFIG:
            raise typer.Exit(EXIT_FAILED) from None
        raise


@app.command()
def sync(
    config: ConfigOption = None,
    kr: Annotated[list[str] | None, typer.Option("--kr", help="Only this key result.")] = None,
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """One pass: fetch every (or one) key result's metrics, record changes, push mirrors."""
    from okrsync.cli_progress import activity
    from okrsync.cli_progress import wanted as progress_wanted

    app_ = open_app(config, database_url)
    if kr:
        unknown = [k for k in kr if k not in {r.id for r in app_.config.key_results()}]
        if unknown:
            error(f"unknown key result: {', '.join(unknown)}")
            raise typer.Exit(EXIT_CONFIG)

    async def work(a: App) -> Any:
        a.apply_definitions()
        report = await a.sync.run_once(key_results=kr or None, trigger="manual")
        if not kr:  # and the work linked to key results and objectives
            from okrsync.engine.work_sync import WorkSync

            work = await WorkSync.from_sync(a.sync).refresh(forced=True)
            report.errors.extend(work.errors)
        return report

    with activity(
        f"sync: {len(app_.config.metrics)} metrics, then their mirrors",
        enabled=progress_wanted(json_out=json_out),
    ):
        report = run_async(app_, work)
    if json_out:
        out.print_json(
            json.dumps(
                {
                    "run_id": report.run_id,
                    "queries": report.queries,
                    "api_calls": report.api_calls,
                    "changed": report.changed,
                    "delivered": report.dispatch.delivered,
                    "delivery_failures": report.dispatch.failed,
                    "errors": report.errors,
                }
            )
        )
    else:
        out.print(
            f"run {report.run_id}: {report.queries} queries, {report.api_calls} API calls, "
            f"{report.changed} changed, {report.dispatch.delivered} delivered"
        )
        for problem in report.errors + report.dispatch.errors:
            error(problem)
    if report.errors or report.dispatch.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def run(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP address (default: $OKRSYNC_HTTP_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="HTTP port (default: $OKRSYNC_HTTP_PORT or 8080; 0 = any free port)."),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """The daemon: sync on schedule, deliver mirrors and serve HTTP until SIGTERM or SIGINT."""
    import asyncio
    import signal
    from datetime import timedelta

    from okrsync.api.app import build_app
    from okrsync.api.context import ApiContext
    from okrsync.api.principal import warn_when_exposed
    from okrsync.api.server import HttpServer, bind
    from okrsync.engine.daemon import STORE_ERRORS, Daemon, stop_within
    from okrsync.store.single_node import daemon_lock

    app_ = open_app(config, database_url)
    listen_host = host if host is not None else app_.settings.http_host
    listen_port = port if port is not None else app_.settings.http_port
    warn_when_exposed(app_.settings, app_.engine, listen_host)  # reads refused: say why

    async def work(a: App) -> None:
        with daemon_lock(a.settings.database_url.get_secret_value()) as alone:
            await serve(a, alone)

    async def serve(a: App, alone: bool) -> None:
        a.apply_definitions()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        lease = timedelta(seconds=a.settings.lease_seconds)
        daemon = Daemon(a.engine, a.config, a.sync, a.dispatcher, clock=a.clock, lease=lease)
        if alone:  # a crashed daemon's leases need not run out: nobody else can hold them
            a.dispatcher.release_leases()
            daemon.claims.release(everyone=True)
        else:  # our own predecessor's (same instance id, see okrsync.store.identity) neither
            a.dispatcher.release_leases(only_mine=True)
            daemon.claims.release()
        context = ApiContext.from_app(a, daemon)
        daemon.on_config.append(lambda rolled: setattr(context, "config", rolled))  # roll-over
        http = HttpServer(build_app(context), bind(listen_host, listen_port))
        # Orderly: the scheduler starts, then HTTP; on a signal HTTP stops first (in-flight
        # requests finish, new ones are refused), then the scheduler starts nothing new and lets
        # the runs in flight and its dispatcher finish, or abandons them all when the grace
        # period ends (a hung vendor or mirror must not hold the shutdown).
        daemon_stop = asyncio.Event()
        scheduler = asyncio.create_task(daemon.run(daemon_stop), name="scheduler")
        try:
            await asyncio.sleep(0)
            await http.start()
            signalled = asyncio.create_task(stop.wait())
            await asyncio.wait({scheduler, signalled}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
        finally:
            await http.stop()
            daemon_stop.set()
            await stop_within(scheduler, a.settings.shutdown_grace_seconds)
            with suppress(*STORE_ERRORS):  # a store that is away keeps them until they expire
                daemon.claims.release()  # the next start, or another replica, need not wait
                a.dispatcher.release_leases(only_mine=True)

    run_async(app_, work)


@contextmanager
def store_session(database_url: str | None = None) -> Iterator[Session | None]:
    """A read-only look at the store (None when empty); a read never creates or migrates it."""
    from okrsync.redaction import Redactor
    from okrsync.store.db import is_current, make_engine, session_scope

    url = settings_for(None, database_url).database_url.get_secret_value()
    with user_errors(Redactor([url])):
        engine = make_engine(url) if store_exists(url) else None
        if engine is None or not is_current(engine):
            yield None
            return
    try:
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def store_exists(url: str) -> bool:
    """False for a SQLite file that does not exist yet (reading must not create it).

    ``okrsync.engine.plan_report.store_exists``, without importing the planner to ask.
    """
    from sqlalchemy.engine import make_url

    from okrsync.store.db import normalise_url

    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return True
    return parsed.database == ":memory:" or Path(parsed.database).exists()


def require_key_result(session: Session | None, kr: str) -> tuple[Session, KeyResultRow]:
    from okrsync.store import views

    row = views.key_result(session, kr) if session is not None else None
    if session is None or row is None:
        error(f"no key result {kr!r} in the store (has `okrsync sync` run?)")
        raise typer.Exit(EXIT_FAILED)
    return session, row


StatusName = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        help="Only key results with this status: on_track, at_risk, off_track, no_data "
        "(repeatable).",
    ),
]


@app.command()
def status(
    json_out: JsonOption = False,
    owner: Annotated[str | None, typer.Option(help="Only this owner's objectives.")] = None,
    cycle: Annotated[str | None, typer.Option(help="Only objectives of this cycle.")] = None,
    status_: StatusName = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Objectives and key results with progress bars (reads the store, streamed)."""
    from datetime import UTC, datetime

    from okrsync.store import views
    from okrsync.store.status_stream import (
        STATUSES,
        StatusFilter,
        stream_status,
        write_status_json,
    )

    unknown = sorted(set(status_ or ()) - set(STATUSES))
    if unknown:
        error(f"unknown status: {', '.join(unknown)} (one of {', '.join(STATUSES)})")
        raise typer.Exit(EXIT_CONFIG)
    where = StatusFilter(owner=owner, cycle=cycle, status=frozenset(status_ or ()))
    with store_session(database_url) as session, reader_gone():
        connections = views.connections_view(session) if session is not None else []
        stream = stream_status(session, datetime.now(UTC), where) if session is not None else None
        if json_out:
            write_status_json(sys.stdout, stream or (), connections)
            sys.stdout.flush()
            return
        shown = print_status(stream or ())
    if not shown:
        filtered = owner is not None or cycle is not None or bool(status_)
        out.print(
            "no objective matches these filters"
            if filtered and session is not None
            else "nothing in the store yet: run `okrsync sync` first"
        )
        return
    unhealthy = [
        c for c in connections if c.status not in (ConnectionStatus.OK, ConnectionStatus.UNKNOWN)
    ]
    for c in unhealthy:
        until = f", paused until {c.paused_until:%Y-%m-%d %H:%M} UTC" if c.paused_until else ""
        out.print(
            f"[yellow]{esc(f'connection {c.name} ({c.type})')}: "
            f"{c.status.replace('_', ' ')}{until}[/yellow] — {esc(c.last_error or '')}",
            highlight=False,
        )


@contextmanager
def reader_gone() -> Iterator[None]:
    """A reader that stops early (``okrsync status --json | head``) ends the stream quietly."""
    try:
        yield
    except BrokenPipeError:
        import os

        # nothing more can be written; point stdout at /dev/null so the exit's flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_FAILED) from None


def write_answer(answer: BaseModel) -> None:
    """One of :mod:`okrsync.read_models` on stdout, indented, as the API answers it."""
    sys.stdout.write(answer.model_dump_json(indent=2) + "\n")


def print_status(objectives: Iterable[ObjectiveView]) -> int:
    """One table per objective, printed as it streams in; how many were printed."""
    shown = 0
    for objective in objectives:
        shown += 1
        where = esc(f"({objective.id}, {objective.cycle})")
        table = Table(
            title=f"{esc(objective.title)} [dim]{where}[/dim]",
            title_justify="left",
            expand=False,
        )
        table.add_column("key result")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_column("progress")
        table.add_column("status")
        table.add_column("confidence", justify="right")
        table.add_column("score", justify="right")
        for kr in objective.key_results:
            style = STATUS_STYLE.get(kr.status, "")
            pct = "—" if kr.progress is None else f"{fmt_decimal(kr.progress * 100, 1)}%"
            state = kr.status.replace("_", " ") + (" (stale)" if kr.stale else "")
            value = display_number(kr.value, kr.unit, kr.decimals) or "—"
            table.add_row(
                f"{esc(kr.title)}\n[dim]{esc(kr.id)}[/dim]",
                esc(f"{value} {kr.unit or ''}".strip()),
                display_number(kr.target, kr.unit, kr.decimals) or "—",
                f"[{style}]{bar(kr.progress)}[/{style}] {pct}",
                f"[{style}]{state}[/{style}]",
                "—" if kr.confidence is None else f"{kr.confidence}/10",
                fmt_decimal(kr.score, 2),
            )
        pct = "—" if objective.progress is None else f"{fmt_decimal(objective.progress * 100, 1)}%"
        table.caption = (
            f"objective {pct} · {objective.status.replace('_', ' ')} · "
            f"{fmt_decimal(objective.elapsed * 100, 0)}% of the cycle elapsed"
            + ("" if objective.score is None else f" · score {fmt_decimal(objective.score, 2)}")
        )
        out.print(table)
    return shown


@app.command()
def history(
    kr: Annotated[str, typer.Argument(help="Key result id.")],
    limit: Annotated[int, typer.Option(help="At most this many, newest last.")] = 50,
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Every recorded value of one key result."""
    from okrsync.store import views

    with store_session(database_url) as maybe:
        session, _row = require_key_result(maybe, kr)
        rows = views.history(session, kr, limit)
    if json_out:
        from okrsync.read_models import from_store, models

        answer = models.KeyResultHistory(
            key_result=kr, measurements=[from_store.measurement(r) for r in rows]
        )
        write_answer(answer)
        return
    table = Table(title=f"history of {esc(kr)}", title_justify="left")
    columns = ("observed at", "value", "progress", "status", "origin", "run", "confidence", "by")
    for column in columns:
        table.add_column(column)
    for m in rows:
        table.add_row(
            m.observed_at.strftime("%Y-%m-%d %H:%M:%S"),
            fmt_decimal(m.value),
            "—" if m.progress is None else f"{fmt_decimal(m.progress * 100, 1)}%",
            m.status,
            m.origin,
            m.run_id or "",
            "" if m.confidence is None else f"{m.confidence}/10",
            m.author or "",
        )
    out.print(table)


@app.command()
def explain(
    kr: Annotated[str, typer.Argument(help="Key result id.")],
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Where the current value came from: connection, query, run and time."""
    from okrsync.store import views

    with store_session(database_url) as maybe:
        session, row = require_key_result(maybe, kr)
        current = views.current_measurement(session, row)
        run_row = views.run(session, current.run_id if current else None)
    if json_out:
        from okrsync.read_models import from_store

        write_answer(from_store.explanation(row, current, run_row))
        return
    if current is None:
        out.print(
            esc(f"{kr}: no value recorded yet")
            + esc(f" (last error: {row.last_error})" if row.last_error else "")
        )
        return
    out.print(
        f"[bold]{esc(row.title)}[/bold] "
        + esc(f"({kr}) = {fmt_decimal(row.value)} {row.unit or ''}")
    )
    confirmed = f"{row.checked_at:%Y-%m-%d %H:%M:%S} UTC" if row.checked_at else "never"
    out.print(
        f"recorded {current.observed_at:%Y-%m-%d %H:%M:%S} UTC by run {current.run_id} "
        f"({current.origin}); last confirmed {confirmed}"
    )
    if row.expression:
        out.print(f"value = {esc(row.expression)}")
    for source in current.provenance:
        out.print(
            f"  • metric [bold]{esc(str(source.get('metric')))}[/bold] = "
            f"{esc(str(source.get('value')))} from connection "
            f"[bold]{esc(str(source.get('connection')))}[/bold] at {source.get('fetched_at')}\n"
            f"    query: {esc(str(source.get('query')))}\n"
            f"    answer digest: {source.get('digest')}",
            highlight=False,
        )
    if row.last_error:
        out.print(f"[yellow]last error[/yellow]: {esc(row.last_error)}")


@app.command()
def connectors(json_out: JsonOption = False) -> None:
    """Installed connector plugins, their fields, and plugins that failed to load."""
    from okrsync.plugins import load_registry

    registry = load_registry()
    rows: list[dict[str, Any]] = []
    for name, connector in registry.connectors.items():
        roles = [
            r for r, m in (("source", connector.query_model), ("sink", connector.mirror_model)) if m
        ]
        rows.append(
            {
                "type": name,
                "summary": connector.summary,
                "roles": roles,
                "connection_fields": _fields(connector.connection_model, skip={"type"}),
                "metric_fields": _fields(connector.query_model) if connector.query_model else [],
                "mirror_fields": _fields(connector.mirror_model) if connector.mirror_model else [],
            }
        )
    errors = [{"name": e.name, "target": e.target, "error": e.error} for e in registry.errors]
    if json_out:
        out.print_json(json.dumps({"connectors": rows, "errors": errors}))
        return
    table = Table(title="installed connectors", title_justify="left")
    for column in ("type", "roles", "connection fields", "metric / mirror fields", "summary"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["type"],
            ", ".join(row["roles"]),
            ", ".join(row["connection_fields"]),
            ", ".join(row["metric_fields"] + row["mirror_fields"]),
            row["summary"],
        )
    out.print(table)
    for e in errors:
        error(f"{e['name']} ({e['target']}): {e['error']}", label="failed to load")


def _fields(model: Any, skip: set[str] | None = None) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        if skip and name in skip:
            continue
        names.append(name if info.is_required() else f"{name}?")
    return names


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The config's JSON Schema, covering every installed connector (for editors and CI)."""
    from okrsync.config import render_schema, write_schema
    from okrsync.plugins import load_registry

    registry = load_registry()
    if output is None:
        sys.stdout.write(render_schema(registry.connectors))
        return
    write_schema(registry.connectors, output)
    out.print(f"wrote {output}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument()] = "head", database_url: DatabaseUrlOption = None
) -> None:
    """Migrate the store's schema (OKRSYNC_DATABASE_URL) to the latest revision."""
    from okrsync.redaction import Redactor
    from okrsync.store.db import make_engine, upgrade

    settings = settings_for(None, database_url)
    url = settings.database_url.get_secret_value()
    with user_errors(Redactor([url])):
        upgrade(make_engine(url), revision)
    out.print(f"store at revision {revision}")


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long the tour runs.")] = 30.0,
    workdir: Annotated[Path | None, typer.Option(help="Where to keep the demo's files.")] = None,
) -> None:
    """A tour on the local sandbox: no credentials, an embedded SQLite store, live progress."""
    from okrsync.demo import run_demo

    try:
        run_demo(seconds=seconds, workdir=workdir, console=out)
    except KeyboardInterrupt:
        out.print("\ndemo stopped")


import okrsync.cli_work  # noqa: E402, F401 - registers `okrsync work`


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
