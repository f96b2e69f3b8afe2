"""The SQL source: one scalar per query, cycle dates bound as parameters, never pasted in.

Queries run on a worker thread (SQLAlchemy's sync drivers) with a connection pool per configured
connection. The URL is a secret: it usually carries a password.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.sql.read_only import placeholders, read_only_url
from okrsync.errors import QueryError, RetriableError, VendorResponseError
from okrsync.sdk.connector import ConnectionConfig, QuerySpec, Source
from okrsync.sdk.models import Query, Reading, as_decimal, digest

# SQLAlchemy is imported when a query first runs: `okrsync validate` reads only the models here
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError


CANCEL_GRACE_SECONDS = 5.0  # how long a cancelled query may take to notice


class RunningQuery:
    """The database connection a worker thread is running a query on, so it can be cancelled.

    ``cancel`` comes from the event loop's thread: sqlite3's ``interrupt()`` and psycopg's
    ``cancel()`` are both meant to be called from another thread than the one running the query.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dbapi: Any = None
        self.cancel_requested = False
        self.cancelled = False  # the query ended with an error after it was cancelled

    def attach(self, dbapi: Any) -> None:
        with self._lock:
            self._dbapi = dbapi
            if self.cancel_requested:
                self._stop()

    def detach(self) -> None:
        with self._lock:
            self._dbapi = None

    def cancel(self) -> None:
        with self._lock:
            self.cancel_requested = True
            self._stop()

    def note_failure(self) -> None:
        self.cancelled = self.cancel_requested

    def _stop(self) -> None:
        if self._dbapi is None:
            return
        stop = getattr(self._dbapi, "interrupt", None) or getattr(self._dbapi, "cancel", None)
        if stop is not None:
            with suppress(Exception):
                stop()


class SqlConnection(ConnectionConfig):
    type: Literal["sql"] = "sql"
    url: SecretStr = Field(description="SQLAlchemy URL, e.g. postgresql://user:pw@host/db")
    timeout: float = Field(default=30.0, gt=0, description="Seconds a query may run.")
    max_concurrency: int = Field(default=4, ge=1, le=64)


class SqlQuery(QuerySpec):
    query: str = Field(description="A SELECT returning one row with one numeric column.")

    @field_validator("query")
    @classmethod
    def _one_statement(cls, value: str) -> str:
        stripped = value.strip().rstrip(";")
        if not stripped:
            raise ValueError("the query is empty")
        if ";" in stripped:
            raise ValueError("one statement only: the query contains ';'")
        return stripped

    def query_text(self) -> str:
        return self.query


class SqlSource(Source[SqlConnection, SqlQuery]):
    query_model = SqlQuery

    def __init__(self, name: str, config: SqlConnection) -> None:
        super().__init__(name, config)
        self.max_concurrency = config.max_concurrency
        self._engine: Engine | None = None
        self._calls = 0
        self.cancelled_queries = 0  # queries stopped in the database at their timeout

    @property
    def api_calls(self) -> int:
        return self._calls

    def _db(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        if self._engine is None:
            url = read_only_url(self.config.url.get_secret_value())
            try:
                self._engine = create_engine(url, pool_pre_ping=True)
            except (SQLAlchemyError, ValueError, ImportError) as exc:
                raise QueryError(
                    f"cannot use the connection URL: {type(exc).__name__}", connection=self.name
                ) from None
        return self._engine

    async def fetch_one(self, query: Query[SqlQuery]) -> Reading:
        sql = query.spec.query
        known = query.cycle.params()
        unknown = sorted(placeholders(sql) - set(known))
        if unknown:
            names = ", ".join(f":{k}" for k in known)
            raise QueryError(
                f"unknown placeholder :{unknown[0]} in the query (known: {names})",
                subject=query.subject,
            )
        params = {k: v for k, v in known.items() if f":{k}" in sql}
        self._calls += 1
        running = RunningQuery()
        work = asyncio.ensure_future(asyncio.to_thread(self._scalar, sql, params, running))
        done, _ = await asyncio.wait({work}, timeout=self.config.timeout)
        if not done:
            # cancel it in the database: a thread cannot be stopped, and an abandoned query
            # would hold the command (its executor) until it ends on its own
            running.cancel()
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(work), CANCEL_GRACE_SECONDS)
            if running.cancelled:
                self.cancelled_queries += 1
            raise RetriableError(
                f"query did not finish in {self.config.timeout:g}s (cancelled)",
                subject=query.subject,
            )
        value, raw = work.result()
        return Reading(
            key=query.key,
            value=value,
            query_text=sql,
            fetched_at=datetime.now(UTC),
            raw_digest=digest(raw),
            api_calls=1,
        )

    def _scalar(
        self, sql: str, params: dict[str, Any], running: RunningQuery
    ) -> tuple[Decimal | None, str]:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

        try:
            with self._db().connect() as conn:
                if conn.dialect.name == "postgresql":  # the server stops it even if we cannot
                    ms = str(max(1, int(self.config.timeout * 1000)))
                    conn.execute(
                        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": ms}
                    )
                running.attach(conn.connection.dbapi_connection)
                try:
                    rows = conn.execute(text(sql), params).fetchmany(2)
                finally:
                    running.detach()
        except OperationalError as exc:
            running.note_failure()
            if exc.connection_invalidated or "connect" in str(exc.orig).lower():
                raise RetriableError(f"database unreachable: {_first_line(exc)}") from None
            raise QueryError(f"the database rejected the query: {_first_line(exc)}") from None
        except DBAPIError as exc:
            running.note_failure()
            raise QueryError(f"the database rejected the query: {_first_line(exc)}") from None
        except SQLAlchemyError as exc:
            raise QueryError(f"the query failed: {_first_line(exc)}") from None
        raw = repr(rows)
        if len(rows) != 1 or len(rows[0]) != 1:
            shape = f"{len(rows)}{'+' if len(rows) == 2 else ''} rows"
            if rows:
                shape += f" of {len(rows[0])} columns"
            raise VendorResponseError(f"expected one row with one column, got {shape}")
        cell = rows[0][0]
        if cell is None:
            return Decimal(0), raw  # SUM over no rows is NULL: the honest number is zero
        try:
            return as_decimal(cell), raw
        except (TypeError, ArithmeticError, ValueError):
            raise VendorResponseError(f"the query returned a non-number: {cell!r}") from None

    async def aclose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0][:300]
