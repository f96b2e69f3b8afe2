"""``okrsync token create|list|revoke``: the API's scoped bearer tokens.

A token is printed once, by ``create``; the store keeps its SHA-256 and its first characters
(:mod:`okrsync.store.api_tokens`), so ``list`` can show which is which but never a token.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from okrsync.store.api_tokens import StoredToken

EXIT_USAGE = 2
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SCOPES = ("read", "check_in", "admin")  # okrsync.api.principal.Scope, without importing the API

token_app = typer.Typer(
    help="API tokens: create (shown once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The store (default: $OKRSYNC_DATABASE_URL or sqlite:///okrsync.db).",
        show_default=False,
    ),
]


@contextmanager
def _store(database_url: str | None, *, migrate: bool) -> Iterator[Engine | None]:
    """The store's engine; migrated first when ``migrate``, else None for a store that does not
    exist or is not current (a read never creates or migrates a store)."""
    from okrsync.cli import store_exists, user_errors
    from okrsync.redaction import Redactor
    from okrsync.settings import Settings
    from okrsync.store.db import is_current, make_engine, upgrade

    url = database_url or Settings().database_url.get_secret_value()
    with user_errors(Redactor([url])):
        if not migrate and not store_exists(url):
            yield None
            return
        engine = make_engine(url)
        try:
            if migrate:
                upgrade(engine)
            elif not is_current(engine):
                yield None
                return
            yield engine
        finally:
            engine.dispose()


def _shown(token: StoredToken) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scopes": list(token.scopes),
        "created_at": when(token.created_at),
        "last_used_at": when(token.last_used_at),
        "revoked_at": when(token.revoked_at),
    }


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (unique).")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, check_in or admin (repeatable)."),
    ],
    json_out: JsonOption = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a token with these scopes and print it: once, it is not kept."""
    from okrsync.cli import error, user_errors
    from okrsync.store.api_tokens import create_token

    unknown = sorted(set(scope) - set(SCOPES))
    if unknown:
        error(f"--scope: {', '.join(unknown)} is not one of {', '.join(SCOPES)}")
        raise typer.Exit(EXIT_USAGE)
    if not name.strip() or len(name) > 100:
        error("--name: 1 to 100 characters")
        raise typer.Exit(EXIT_USAGE)
    with _store(database_url, migrate=True) as engine, user_errors():
        assert engine is not None
        stored, token = create_token(engine, name, scope, datetime.now(UTC))
    if json_out:
        sys.stdout.write(json.dumps({**_shown(stored), "token": token}) + "\n")
        return
    sys.stdout.write(token + "\n")
    err_text = (
        f"token {stored.name!r} (id {stored.id}, scopes {', '.join(stored.scopes)}): "
        "shown once, okrsync keeps only its hash. Send it as 'Authorization: Bearer <token>'."
    )
    typer.echo(err_text, err=True)


@token_app.command("list")
def list_(json_out: JsonOption = False, database_url: DatabaseUrl = None) -> None:
    """The tokens (never the tokens themselves): id, name, prefix, scopes, when used."""
    from rich.table import Table

    from okrsync.cli import out
    from okrsync.store.api_tokens import list_tokens

    with _store(database_url, migrate=False) as engine:
        tokens = [] if engine is None else list_tokens(engine)
    if json_out:
        sys.stdout.write(json.dumps({"tokens": [_shown(t) for t in tokens]}) + "\n")
        return
    if not tokens:
        out.print("no tokens (okrsync token create --name N --scope read)")
        return
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "revoked")
    for t in tokens:
        shown = _shown(t)
        table.add_row(
            str(t.id),
            t.name,
            t.prefix + "…",
            ", ".join(t.scopes),
            *(shown[k] or "-" for k in ("created_at", "last_used_at", "revoked_at")),
        )
    out.print(table)


@token_app.command("revoke")
def revoke(
    which: Annotated[str, typer.Argument(metavar="ID|NAME", help="The token's id or name.")],
    json_out: JsonOption = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token: the next request with it is refused (401)."""
    from okrsync.cli import error, out, user_errors
    from okrsync.store.api_tokens import revoke_token

    with _store(database_url, migrate=False) as engine, user_errors():
        if engine is None:
            error("no store yet: no tokens to revoke")
            raise typer.Exit(1)
        stored = revoke_token(engine, which, datetime.now(UTC))
    if json_out:
        sys.stdout.write(json.dumps(_shown(stored)) + "\n")
        return
    out.print(f"token {stored.name!r} (id {stored.id}) revoked", markup=False, highlight=False)
