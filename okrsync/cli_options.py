"""Options several ``okrsync`` command modules share."""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The store (default: $OKRSYNC_DATABASE_URL or sqlite:///okrsync.db).",
        show_default=False,
    ),
]
