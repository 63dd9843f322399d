"""A write opened inside a write joins it: one use case, one transaction, one commit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from mltrail.storage import raw
from mltrail.storage.database import Database
from mltrail.storage.migrate import upgrade


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(database)
    yield database
    database.dispose()


def _names(db: Database) -> list[str]:
    with db.read() as conn:
        return [row[0] for row in raw.execute(conn, "SELECT name FROM catalog_models")]


def _insert(conn: Connection, name: str) -> None:
    raw.execute(conn, "INSERT INTO catalog_models (name, owner, seq) VALUES (?, 'ann', 0)", (name,))


def test_a_nested_write_commits_with_the_outer_one(db: Database) -> None:
    with db.write() as outer:
        _insert(outer, "churn")
        with db.write() as inner:
            assert inner is outer
            _insert(inner, "fraud")
        with db.read() as reader:  # reads inside the write see its own rows
            assert reader is outer
            assert len(raw.execute(reader, "SELECT name FROM catalog_models")) == 2
    assert sorted(_names(db)) == ["churn", "fraud"]


def test_a_failure_after_a_nested_write_rolls_back_both(db: Database) -> None:
    with pytest.raises(RuntimeError, match="after the inner write"), db.write() as outer:
        with db.write() as inner:
            _insert(inner, "fraud")
        _insert(outer, "churn")
        raise RuntimeError("after the inner write")
    assert _names(db) == []
    with db.write() as conn:  # and the next write opens a transaction of its own
        _insert(conn, "churn")
    assert _names(db) == ["churn"]


def test_only_the_thread_that_opened_a_write_joins_it(db: Database) -> None:
    """Another thread (an API request, say) reads its own snapshot: it neither joins the
    open write nor sees its uncommitted rows."""
    with ThreadPoolExecutor(max_workers=1) as other:
        with db.write() as conn:
            _insert(conn, "churn")
            assert other.submit(_names, db).result() == []
        assert other.submit(_names, db).result() == ["churn"]
