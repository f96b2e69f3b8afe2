"""A ``sql`` connection only reads: SQLite opened read-only, placeholders checked up front.

A mistyped SQLite path must not leave an empty database behind (SQLite creates a missing file
on open unless told ``mode=ro``), and ``okrsync plan`` promises to write nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from okrsync.errors import QueryError

# a ``:name`` bind placeholder as SQLAlchemy's ``text()`` reads it (not ``::cast``, not ``\:``)
PLACEHOLDER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def placeholders(sql: str) -> set[str]:
    """The ``:name`` placeholders a query uses (quoted literals are not looked into)."""
    outside_quotes = re.sub(r"'(?:[^']|'')*'", "''", sql)
    return set(PLACEHOLDER.findall(outside_quotes))


def read_only_url(url: str) -> str:
    """The SQLAlchemy URL to use: PostgreSQL's short forms on psycopg; a SQLite file read-only.

    A SQLite file that does not exist is an error naming its path, and nothing is created.
    """
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url  # in-memory, or already a SQLite URI the user wrote on purpose
    path = Path(database)
    if not path.is_file():
        raise QueryError(f"no SQLite database at {path} (it is not created: check the path)")
    query = "&".join(f"{k}={v}" for k, v in parsed.query.items() if isinstance(v, str))
    extra = f"&{query}" if query else ""
    return f"{parsed.drivername}:///file:{quote(str(path.resolve()))}?mode=ro&uri=true{extra}"
