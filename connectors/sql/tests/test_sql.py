"""The SQL source against real databases: a SQLite file and the PostgreSQL test server."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, text

from connectors.sql import SqlConnection, SqlSource, connector
from connectors.sql.source import SqlQuery
from okrsync.errors import QueryError, RetriableError, VendorResponseError
from okrsync.sdk.models import CycleWindow, Query

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
DEALS = [
    (250, 1, "2026-10-03"),
    (125.25, 1, "2026-11-12"),
    (999, 0, "2026-11-13"),
    (400, 1, "2026-09-30"),
]


def query(sql: str, metric: str = "won") -> Query[SqlQuery]:
    spec = SqlQuery(query=sql)
    return Query(Query.make_key("db", spec, CYCLE), "db", (metric,), spec, CYCLE)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE deals (amount NUMERIC, won INTEGER, closed_on DATE)")
        db.executemany("INSERT INTO deals VALUES (?, ?, ?)", DEALS)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"w_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(
            text(f"CREATE TABLE {schema}.deals (amount NUMERIC(12,2), won INTEGER, closed_on DATE)")
        )
        for amount, won, closed in DEALS:
            conn.execute(
                text(f"INSERT INTO {schema}.deals VALUES (:a, :w, :c)"),
                {"a": Decimal(str(amount)), "w": won, "c": date.fromisoformat(closed)},
            )
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def source(url: str) -> SqlSource:
    return SqlSource("db", SqlConnection(url=SecretStr(url)))


async def test_sum_binds_the_cycle_start_as_a_parameter(url: str) -> None:
    src = source(url)
    q = query("SELECT SUM(amount) FROM deals WHERE won = 1 AND closed_on >= :cycle_start")
    (reading,) = await src.fetch([q])
    await src.aclose()
    assert reading.error is None
    assert reading.value == Decimal("375.25")
    assert reading.query_text.startswith("SELECT SUM(amount)")
    assert reading.raw_digest.startswith("sha256:")
    assert src.api_calls == 1


async def test_sum_over_no_rows_is_zero(url: str) -> None:
    src = source(url)
    (reading,) = await src.fetch(
        [query("SELECT SUM(amount) FROM deals WHERE closed_on > :cycle_end")]
    )
    await src.aclose()
    assert reading.value == Decimal(0)


async def test_bad_sql_names_the_metric_and_connection(url: str) -> None:
    src = source(url)
    (reading,) = await src.fetch([query("SELEC amount FROM deals", metric="bookings")])
    await src.aclose()
    assert isinstance(reading.error, QueryError)
    assert "connection 'db'" in str(reading.error) and "metric 'bookings'" in str(reading.error)


async def test_more_than_one_row_is_a_wrong_shape(url: str) -> None:
    src = source(url)
    (reading,) = await src.fetch([query("SELECT amount FROM deals")])
    await src.aclose()
    assert isinstance(reading.error, VendorResponseError)
    assert "one row with one column" in str(reading.error)


async def test_unreachable_database_is_transient_and_hides_the_password() -> None:
    src = source("postgresql://okr:canary-pw-4711@127.0.0.1:1/none")
    (reading,) = await src.fetch([query("SELECT 1")])
    await src.aclose()
    assert isinstance(reading.error, RetriableError)
    assert "canary-pw-4711" not in str(reading.error)


def test_several_statements_are_refused_at_config_time() -> None:
    with pytest.raises(ValidationError, match="one statement only"):
        SqlQuery(query="SELECT 1; DROP TABLE deals")


def test_descriptor() -> None:
    assert connector.type == "sql"
    assert connector.query_model is SqlQuery
    assert connector.mirror_model is None
    assert SqlConnection(url=SecretStr("sqlite://")).secret_values() == ["sqlite://"]


async def test_a_missing_sqlite_file_is_an_error_naming_it_and_is_not_created(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "warehuose.db"
    src = source(f"sqlite:///{missing}")
    (reading,) = await src.fetch([query("SELECT 1")])
    await src.aclose()
    assert isinstance(reading.error, QueryError)
    assert f"no SQLite database at {missing}" in str(reading.error)
    assert not missing.exists()


async def test_sqlite_is_opened_read_only(sqlite_url: str) -> None:
    src = source(sqlite_url)
    insert = "INSERT INTO deals VALUES (1, 1, '2026-10-05') RETURNING 1"
    (reading,) = await src.fetch([query(insert)])
    await src.aclose()
    assert isinstance(reading.error, QueryError)
    assert "readonly" in str(reading.error)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM deals").fetchone() == (len(DEALS),)


async def test_an_unknown_placeholder_is_named_in_the_users_words(url: str) -> None:
    src = source(url)
    q = query("SELECT SUM(amount) FROM deals WHERE closed_on <= :cycle_ned", metric="bookings")
    (reading,) = await src.fetch([q])
    await src.aclose()
    assert isinstance(reading.error, QueryError)
    message = str(reading.error)
    assert "unknown placeholder :cycle_ned" in message and "metric 'bookings'" in message
    assert ":cycle_end" in message  # what was meant is among the known ones
    assert "bind parameter" not in message and "sqlalchemy" not in message.lower()
    assert src.api_calls == 0  # refused before asking the database


async def test_a_missing_table_is_reported_in_the_databases_own_words(sqlite_url: str) -> None:
    src = source(sqlite_url)
    (reading,) = await src.fetch([query("SELECT SUM(amount) FROM deal")])
    await src.aclose()
    assert isinstance(reading.error, QueryError)
    assert "no such table: deal" in str(reading.error)
    assert "sqlalchemy" not in str(reading.error).lower()
    assert "[SQL:" not in str(reading.error)


SLOW = {
    # counts to a billion: minutes unless interrupted
    "sqlite_url": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT COUNT(*) FROM (SELECT i FROM n LIMIT 1000000000)",
    "postgres_url": "SELECT 1 FROM pg_sleep(60)",
}


@pytest.mark.parametrize("kind", ["sqlite_url", "postgres_url"])
async def test_the_timeout_cancels_the_running_query(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(kind))
    src = SqlSource("db", SqlConnection(url=SecretStr(url), timeout=0.3))
    (reading,) = await src.fetch([query(SLOW[kind])])
    assert isinstance(reading.error, RetriableError)
    assert "did not finish in 0.3s" in str(reading.error)
    # the database stopped it (the worker saw its query cancelled), not a thread left running
    assert src.cancelled_queries == 1
    (again,) = await src.fetch([query("SELECT 7")])  # the connection is usable afterwards
    assert again.value == Decimal(7)
    await src.aclose()
