"""Triggers that make the ledger tables insert-only, on both dialects (DESIGN §3).

Anything that bypasses them (a dropped trigger, an edited file) is caught by `verify`.
"""

from __future__ import annotations

from collections.abc import Iterator

from mltrail.storage.schema import LEDGER_TABLES

__all__ = ["drop_statements", "install_statements"]

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION mltrail_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'mltrail: % on % refused: ledger tables are append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def install_statements(dialect: str) -> Iterator[str]:
    """SQL that installs the refusal triggers on every ledger table."""
    if dialect == "postgresql":
        yield _PG_FUNCTION
    for table in LEDGER_TABLES:
        yield from _table_statements(dialect, table)


def drop_statements(dialect: str, table: str) -> Iterator[str]:
    """SQL that removes a table's triggers (used by tamper tests and migrations only)."""
    for op in ("update", "delete", "truncate"):
        if dialect == "postgresql":
            yield f"DROP TRIGGER IF EXISTS {table}_no_{op} ON {table}"
        elif op != "truncate":
            yield f"DROP TRIGGER IF EXISTS {table}_no_{op}"


def _table_statements(dialect: str, table: str) -> Iterator[str]:
    if dialect == "sqlite":
        for op in ("UPDATE", "DELETE"):
            yield (
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'mltrail: {op} on {table} refused: "
                "ledger tables are append-only'); END"
            )
        return
    for op, level in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
        yield f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()} ON {table}"
        yield (
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"FOR EACH {level} EXECUTE FUNCTION mltrail_refuse_change()"
        )
