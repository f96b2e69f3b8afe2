"""The store on SQLite and PostgreSQL: migrations match the models; values stay exact."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, select

from okrsync.store.db import current_revision, head_revision, make_engine, session_scope, upgrade
from okrsync.store.tables import KeyResultRow, MeasurementRow


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        drift = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    engine.dispose()
    assert drift == []


def test_decimals_stay_exact_and_times_stay_aware(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    observed = datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(KeyResultRow(id="kr", objective_id="o", title="t", kind="increase"))
        session.add(
            MeasurementRow(
                key_result_id="kr",
                value=Decimal("0.1000000000000000000000000001"),
                progress=Decimal("-1.5"),
                status="on_track",
                observed_at=observed,
            )
        )
    with session_scope(engine) as session:
        row = session.exec(select(MeasurementRow)).one()
    engine.dispose()
    assert row.value == Decimal("0.1000000000000000000000000001")
    assert row.progress == Decimal("-1.5")
    assert row.observed_at == observed
    assert row.observed_at.tzinfo is not None


def test_migrations_go_down_and_up_again(database_url: str) -> None:
    from alembic import command

    from okrsync.store.db import alembic_config

    engine = make_engine(database_url)
    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()
