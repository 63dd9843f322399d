"""The migrations build exactly the schema the code declares, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mltrail.storage.database import Database
from mltrail.storage.migrate import current_revision, head_revision, upgrade
from mltrail.storage.schema import metadata

FIX = (
    "the schema in mltrail/storage/schema.py and the migrations disagree; add a revision with "
    "alembic's autogenerate against a database at head (see storage/migrate.py) and review it"
)


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"{FIX}:\n" + "\n".join(map(str, diff))
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        upgrade(db)
        upgrade(db)
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()
