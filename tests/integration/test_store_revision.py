"""The store's schema revision as read without Alembic agrees with Alembic's own answer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from okrsync.store import revision
from okrsync.store.db import current_revision, head_revision, is_current, make_engine, upgrade


def test_the_newest_migration_is_alembics_head() -> None:
    assert revision.head_revisions() == {head_revision()}


def test_a_store_is_current_exactly_when_alembic_says_so(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert revision.stored_revisions(engine) == frozenset()  # never migrated
        assert current_revision(engine) is None
        assert not is_current(engine)
        upgrade(engine)
        assert revision.stored_revisions(engine) == {current_revision(engine)}
        assert is_current(engine)
        with engine.begin() as conn:  # a store left at an older migration
            conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        assert current_revision(engine) == "0001"
        assert not is_current(engine)
    finally:
        engine.dispose()


def test_a_branch_point_has_two_heads(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    (tmp_path / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    (tmp_path / "helpers.py").write_text("x = 1\n")
    assert revision.head_revisions(tmp_path) == {"b", "c"}
    (tmp_path / "m.py").write_text('revision = "m"\ndown_revision = ("b", "c")\n')  # a merge
    assert revision.head_revisions.__wrapped__(tmp_path) == {"m"}
