"""Engines, sessions and schema upgrades for the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from okrsync.errors import StoreError
from okrsync.store import revision

# Alembic is imported where a migration runs: reading the store does not need it (issue 13)
if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kw: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


MIGRATION_LOCK = 0x6F6B7273  # "okrs": PostgreSQL advisory lock held while migrating


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``okrsync db upgrade``; also run at daemon start).

    On PostgreSQL an advisory lock makes replicas starting together migrate one after another.
    """
    from alembic import command

    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as lock:
                lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                try:
                    command.upgrade(alembic_config(engine), revision)
                finally:
                    lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        else:
            command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store: {exc.orig}") from None


def is_current(engine: Engine) -> bool:
    """Whether the schema is at the latest revision (read-only commands need no migration)."""
    try:
        return revision.is_current(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store: {exc.orig}") from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
