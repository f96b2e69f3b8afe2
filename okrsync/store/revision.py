"""Whether a store's schema is at the latest migration, asked without importing Alembic.

Read-only commands (``okrsync status``, ``history``, ``explain``) only need to know that the
store's schema is the one this okrsync writes; importing Alembic to ask cost a fifth of
``okrsync status`` (issue 13). The newest migration is found from the migration files' own
``revision`` and ``down_revision`` lines (the heads are the revisions no other one names as its
parent), and the store's from Alembic's ``alembic_version`` table. A test holds both answers
against Alembic's.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, inspect, text

VERSIONS = Path(__file__).with_name("migrations") / "versions"
VERSION_TABLE = "alembic_version"  # Alembic's default, which okrsync's environment keeps
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


@cache
def head_revisions(versions: Path = VERSIONS) -> frozenset[str]:
    """The revisions of the migration files that no other migration builds on."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"]))
        down = ast.literal_eval(found.get("down_revision", "None"))
        parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def stored_revisions(engine: Engine) -> frozenset[str]:
    """The revisions a store is stamped with (none for a store never migrated)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return frozenset()
        return frozenset(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def is_current(engine: Engine) -> bool:
    """Whether the store's schema is at the newest migration."""
    stored = stored_revisions(engine)
    return bool(stored) and stored == head_revisions()
