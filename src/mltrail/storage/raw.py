"""Plain SQL for the hot paths (appends, proofs): no statement building per call.

SQLAlchemy Core builds and caches a statement object per call, which costs more than the
query itself for the tiny, fixed statements an append or a proof runs. These helpers pass
SQL written with ``?`` placeholders straight to the driver's cursor (``%s`` for psycopg),
inside the transaction the SQLAlchemy connection has open. Driver errors still surface
through `Database.write`/`read`, which translate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

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
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    types: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``table``.

    SQLite gets one executemany; PostgreSQL gets ``COPY … FROM STDIN`` for batches of
    `COPY_THRESHOLD` rows or more, in the binary format when ``types`` names each column's
    PostgreSQL type (``text``, ``int4``, ``bytea``, …): no text escaping of the values on
    either end, less than half the client's time per row. Constraint violations raise the
    driver's integrity error either way, and nothing of the statement remains.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        marks = ", ".join("?" * len(columns))
        executemany(conn, f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        return
    binary = " (FORMAT BINARY)" if types is not None else ""
    cursor = conn.connection.cursor()
    try:
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN{binary}") as copy:
            if types is not None:
                copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
