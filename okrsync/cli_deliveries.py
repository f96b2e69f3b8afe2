"""``okrsync deliveries``: the outbox's failed and pending pushes, and a failed one retried."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from okrsync.cli_options import DatabaseUrlOption

if TYPE_CHECKING:
    from okrsync.redaction import Redactor

deliveries_app = typer.Typer(
    help="Failed and pending pushes to mirrors; `retry ID` tries a failed one again now.",
    rich_markup_mode=None,
)

StatusOption = Annotated[
    str | None,
    typer.Option("--status", help="Only failed or only pending deliveries (default: both)."),
]
Config = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file, for its secrets to redact (optional)."),
]


@deliveries_app.callback(invoke_without_command=True)
def deliveries(
    ctx: typer.Context,
    status: StatusOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 100,
    database_url: DatabaseUrlOption = None,
    config: Config = None,
) -> None:
    """Failed and pending deliveries: id, mirror, key result, attempts, last error, next attempt."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from okrsync.cli import EXIT_CONFIG, error, out, store_session
    from okrsync.domain.statuses import DeliveryStatus
    from okrsync.read_models import from_store
    from okrsync.store.delivery_admin import LISTED
    from okrsync.store.delivery_admin import deliveries as read

    allowed = [s.value for s in LISTED]
    if status is not None and status not in allowed:
        error(f"unknown status: {status} (one of {', '.join(allowed)})")
        raise typer.Exit(EXIT_CONFIG)
    with store_session(database_url) as session:
        wanted = DeliveryStatus(status) if status is not None else None
        rows = [] if session is None else read(session, wanted, limit)
        listed = [from_store.delivery(r) for r in rows]
    redactor = _redactor(database_url, config)
    for d in listed:
        d.last_error = redactor.redact(d.last_error) if d.last_error else d.last_error
    if json_out:
        import json

        answer = {"deliveries": [d.model_dump(mode="json") for d in listed]}  # as the API's
        print(json.dumps(answer, indent=2))
        return
    if not listed:
        out.print(f"no {status or 'failed or pending'} deliveries")
        return
    table = Table(title="deliveries", title_justify="left")
    columns = ("id", "status", "mirror", "key result", "attempts", "last error", "next attempt")
    for column in columns:
        table.add_column(column, overflow="fold")
    for d in listed:
        table.add_row(
            str(d.id),
            d.status,
            d.mirror,
            d.key_result or (f"(objective {d.objective})" if d.objective else ""),
            str(d.attempts),
            d.last_error or "",
            "—" if d.status != "pending" else f"{d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC",
            style="red" if d.status == "failed" else "",
        )
    out.print(table, markup=False, highlight=False)


@deliveries_app.command("retry")
def retry(
    delivery_id: Annotated[int, typer.Argument(metavar="ID", help="The delivery's id.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Put a failed delivery back to pending, due now (the daemon or the next sync pushes it)."""
    from datetime import UTC, datetime

    from okrsync.cli import EXIT_FAILED, error, out, store_session
    from okrsync.store.delivery_admin import retry as put_back

    with store_session(database_url) as session:
        outcome = put_back(session, delivery_id, datetime.now(UTC)) if session else None
    if outcome is None or not outcome.found:
        error(f"no delivery {delivery_id} in the store")
        raise typer.Exit(EXIT_FAILED)
    if not outcome.retried:
        error(f"delivery {delivery_id} is {outcome.status}, not failed: nothing to retry")
        raise typer.Exit(EXIT_FAILED)
    out.print(f"delivery {delivery_id} is pending again, due now")


def _redactor(database_url: str | None, config: Path | None) -> Redactor:
    """The store's URL and, when the config loads, its secrets: never shown in an error."""
    from okrsync.cli import settings_for
    from okrsync.redaction import Redactor

    settings = settings_for(config, database_url)
    redactor = Redactor([settings.database_url.get_secret_value()])
    if config is not None or settings.config.exists():
        from okrsync.config import load_config
        from okrsync.errors import OkrsyncError
        from okrsync.plugins import load_registry

        try:
            loaded = load_config(
                settings.config, load_registry().connectors, secrets_dir=settings.secrets_dir
            )
        except OkrsyncError:
            return redactor
        redactor.add(loaded.secret_values())
    return redactor
