"""Plain SQL for the hot paths (appends, proofs): no statement building per call.

SQLAlchemy Core builds and caches a statement object per call, which costs more than the
query itself for the tiny, fixed statements an append or a proof runs. These helpers pass
SQL written with ``?`` placeholders straight to the driver's cursor (``%s`` for psycopg),
inside the transaction the SQLAlchemy connection has open. Driver errors still surface
through `Database.write`/`read`, which translate them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["COPY_THRESHOLD", "execute", "executemany", "fetch_dicts", "insert_rows"]

# From this many rows on, PostgreSQL inserts go through COPY: one stream instead of one
# pipelined statement per row, about five times cheaper per row on both ends.
COPY_THRESHOLD = 64


def _sql(conn: Connection, sql: str) -> str:
    return sql.replace("?", "%s") if conn.dialect.name == "postgresql" else sql


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the connection's open transaction; returns its rows."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_sql(conn, sql), tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        cursor.close()


def fetch_dicts(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run a query; rows as column → value dicts."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_sql(conn, sql), tuple(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for many parameter rows (the driver's executemany)."""
    if not rows:
        return
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(_sql(conn, sql), rows)
    finally:
        cursor.close()


def insert_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``table``.

    SQLite gets one executemany; PostgreSQL gets binary ``COPY … FROM STDIN`` for batches
    of `COPY_THRESHOLD` rows or more, the column types taken from the table's declaration:
    no text escaping of the values on either end. Constraint violations raise the driver's
    integrity error either way, and nothing of the statement remains.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        marks = ", ".join("?" * len(columns))
        executemany(conn, f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        return
    cursor = conn.connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_column_types(conn.dialect, table, tuple(columns)))
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


@functools.cache
def _column_types(dialect: Dialect, table: sa.Table, columns: tuple[str, ...]) -> list[str]:
    """The type names of ``columns`` in ``dialect`` (``bigint``, ``text``, ``bytea``, …)."""
    return [table.c[name].type.compile(dialect=dialect).lower() for name in columns]
