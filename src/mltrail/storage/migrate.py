"""Schema migrations (Alembic), run programmatically on a `Database`.

>>> from mltrail.storage.database import Database
>>> db = Database.connect("sqlite://")
>>> upgrade(db)
>>> current_revision(db) == head_revision()
True
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mltrail.errors import ConfigError
from mltrail.storage.database import Database, translate_errors
from mltrail.storage.triggers import install_statements

__all__ = ["current_revision", "head_revision", "require_head", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this version of mltrail knows."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def current_revision(db: Database) -> str | None:
    """The schema revision the database is at (None for an empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_head(db: Database, *, older_ok: bool = False) -> None:
    """Refuse a database whose schema is not the one this mltrail writes (with
    ``older_ok``, only one a newer mltrail wrote: what `upgrade` can bring up to date).

    Raises:
        ConfigError: the schema is older (the hint says to run `mltrail upgrade`) or
            newer (written by a later mltrail) than this version's.
    """
    current, head = current_revision(db), head_revision()
    if current == head:
        return
    if current is not None and current not in _known_revisions():
        raise ConfigError(
            f"the registry database is at schema revision {current}, which this mltrail "
            f"(schema {head}) does not know: a newer mltrail upgraded it",
            hint="use that newer version of mltrail with this registry",
        )
    if older_ok:
        return
    raise ConfigError(
        f"the registry database is at schema revision {current}; this mltrail needs {head}",
        hint="back up the database, then run `mltrail upgrade` (it migrates the schema and "
        "records the upgrade in the log)",
    )


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision and (re)install the ledger triggers."""
    config = _config()
    with translate_errors("migrating the schema"), db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        for statement in install_statements(db.dialect):
            conn.execute(sa.text(statement))
