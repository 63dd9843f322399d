"""Connecting to the metadata database: SQLite (embedded default) or PostgreSQL.

The one seam where driver exceptions become mltrail errors is :func:`translate_errors`.

>>> db = Database.connect("sqlite://")
>>> db.dialect
'sqlite'
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from mltrail.errors import ConfigError, ConflictError, StorageError

__all__ = ["APPEND_LOCK_KEY", "Database", "translate_errors"]

# The PostgreSQL advisory lock that serializes appends (any constant unique to mltrail).
APPEND_LOCK_KEY = 0x6D6C7472  # "mltr"


DRIVER_INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)
_DRIVER_ERRORS = (sqlite3.Error, psycopg.Error)


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn driver exceptions raised while doing ``what`` into mltrail errors.

    Both SQLAlchemy's wrappers and raw driver errors (from `mltrail.storage.raw`) arrive
    here; this is the one seam where they become `RegistryError`s.
    """
    try:
        yield
    except (sa.exc.IntegrityError, *DRIVER_INTEGRITY_ERRORS) as exc:
        cause = getattr(exc, "orig", exc)
        if "append-only" in str(cause):
            raise StorageError(
                f"{what} refused: {cause}",
                hint="ledger tables never change; append a correcting event",
            ) from exc
        raise ConflictError(
            f"{what} conflicts with a record that already exists: {cause}",
            hint="another writer got there first; re-read the current state and retry",
        ) from exc
    except (sa.exc.DBAPIError, *_DRIVER_ERRORS) as exc:
        cause = getattr(exc, "orig", exc)
        raise StorageError(f"{what} failed in the database: {cause}") from exc


class Database:
    """An engine plus the dialect specifics mltrail relies on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._open = _OpenWrite()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"database dialect {self.dialect!r} is not supported",
                hint="use sqlite:///path/registry.db or postgresql://user@host/db",
            )

    @classmethod
    def connect(cls, url: str, **engine_args: Any) -> Database:
        """Open ``url`` (``sqlite:///file``, ``sqlite://`` in memory, ``postgresql://…``).

        Raises:
            ConfigError: the URL is malformed or names an unsupported database.
        """
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"database URL {url!r} is not valid: {exc}") from exc
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_backend_name() == "sqlite":
            return cls(_sqlite_engine(parsed, **engine_args))
        return cls(sa.create_engine(parsed, pool_pre_ping=True, **engine_args))

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction holding the append lock; commits on success.

        Opened while this thread already has one open, it joins that transaction instead
        (and commits or rolls back with it): a use case can check, read, append and
        project in one transaction, under one lock, with one commit.
        """
        joined = self._open.conn
        if joined is not None:
            yield joined
            return
        with translate_errors("writing"), self.engine.connect() as conn:
            conn = conn.execution_options(mltrail_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK_KEY}
                    )
                self._open.conn = conn
                try:
                    yield conn
                finally:
                    self._open.conn = None

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot.

        Inside a write transaction of this thread it reads that transaction, own writes
        included (another connection would not see them, and an in-memory database has
        only the one connection).
        """
        joined = self._open.conn
        if joined is not None:
            yield joined
            return
        with translate_errors("reading"), self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


class _OpenWrite(threading.local):
    """The write transaction this thread has open on a database, if any."""

    conn: Connection | None = None


def _sqlite_engine(url: sa.engine.URL, **engine_args: Any) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        engine_args.setdefault("poolclass", StaticPool)
        engine_args.setdefault("connect_args", {"check_same_thread": False})
    else:
        engine_args.setdefault("connect_args", {"timeout": 30})
    engine = sa.create_engine(url, **engine_args)

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        # DESIGN §5: an append is durable when it returns.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache: the log's indexes outgrow SQLite's 8 MiB default around a
        # few hundred thousand events, and appends then pay for page misses in every index.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front so appends are serialized and a reader
        # never has to upgrade its lock mid-transaction (no SQLITE_BUSY deadlocks).
        # Issued on the driver connection itself: a statement through SQLAlchemy's
        # execution machinery would cost more than the BEGIN, on every transaction.
        immediate = conn.get_execution_options().get("mltrail_write", False)
        driver = conn.connection.driver_connection
        assert driver is not None  # a checked-out connection always has one
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
