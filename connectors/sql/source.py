"""The SQL source: one scalar per query, cycle dates bound as parameters, never pasted in.

Queries run on a worker thread (SQLAlchemy's sync drivers) with a connection pool per configured
connection. The URL is a secret: it usually carries a password.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from okrsync.errors import QueryError, RetriableError, VendorResponseError
from okrsync.sdk.connector import ConnectionConfig, QuerySpec, Source
from okrsync.sdk.models import Query, Reading, as_decimal, digest

# SQLAlchemy is imported when a query first runs: `okrsync validate` reads only the models here
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError


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

    @property
    def api_calls(self) -> int:
        return self._calls

    def _db(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        if self._engine is None:
            url = self.config.url.get_secret_value()
            if url.startswith(("postgres://", "postgresql://")):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            try:
                self._engine = create_engine(url, pool_pre_ping=True)
            except (SQLAlchemyError, ValueError, ImportError) as exc:
                raise QueryError(
                    f"cannot use the connection URL: {type(exc).__name__}", connection=self.name
                ) from None
        return self._engine

    async def fetch_one(self, query: Query[SqlQuery]) -> Reading:
        sql = query.spec.query
        params = {k: v for k, v in query.cycle.params().items() if f":{k}" in sql}
        self._calls += 1
        try:
            value, raw = await asyncio.wait_for(
                asyncio.to_thread(self._scalar, sql, params), timeout=self.config.timeout
            )
        except TimeoutError:
            raise RetriableError(
                f"query did not finish in {self.config.timeout:g}s", subject=query.subject
            ) from None
        return Reading(
            key=query.key,
            value=value,
            query_text=sql,
            fetched_at=datetime.now(UTC),
            raw_digest=digest(raw),
            api_calls=1,
        )

    def _scalar(self, sql: str, params: dict[str, Any]) -> tuple[Decimal | None, str]:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

        try:
            with self._db().connect() as conn:
                rows = conn.execute(text(sql), params).fetchmany(2)
        except OperationalError as exc:
            if exc.connection_invalidated or "connect" in str(exc.orig).lower():
                raise RetriableError(f"database unreachable: {_first_line(exc)}") from None
            raise QueryError(f"the database rejected the query: {_first_line(exc)}") from None
        except DBAPIError as exc:
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
