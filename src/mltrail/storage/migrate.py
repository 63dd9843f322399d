"""Schema migrations (Alembic), run programmatically on a `Database`.

>>> from mltrail.storage.database import Database
>>> db = Database.connect("sqlite://")
>>> upgrade(db)
>>> current_revision(db) == head_revision()
True
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mltrail.storage.database import Database, translate_errors
from mltrail.storage.triggers import install_statements

__all__ = ["current_revision", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    """The newest schema revision this version of mltrail knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The schema revision the database is at (None for an empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision and (re)install the ledger triggers."""
    config = _config()
    with translate_errors("migrating the schema"), db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        for statement in install_statements(db.dialect):
            conn.execute(sa.text(statement))
