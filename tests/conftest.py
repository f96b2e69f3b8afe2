"""Fixtures shared by every test tier: the store runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist starts its workers with COLUMNS=80: a rich console made when okrsync.cli is
    # imported would keep that width for good, and the tests that give a wide COLUMNS per run
    # (one line per message, as in a log) would see messages wrapped
    os.environ.pop("COLUMNS", None)

PG_URL = os.environ.get("OKRSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults: code that configures logging in-process (a
    benchmark run at level "error", say) must not silence the warnings a later test captures."""
    yield
    structlog.reset_defaults()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty store: a new SQLite file, or a new PostgreSQL schema on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'okrsync.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server (test_pg_restart), killing the pooled connection
    admin = create_engine(PG_URL, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


def _drop_schema(admin: Engine, schema: str) -> None:
    """Drop a test's schema. A daemon thread of the test may still be finishing a transaction on
    it (a cancelled push settling its lease): when PostgreSQL picks the drop as the victim of that
    deadlock, the other transaction completes and the drop is tried again."""
    for attempt in range(5):
        try:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.5)
