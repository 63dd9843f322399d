"""Reads of the access projections: principals, their grants and keys, API tokens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.canonical import loads
from mltrail.storage import raw
from mltrail.storage import schema as t

__all__ = [
    "Principal",
    "active_keys",
    "authority",
    "get_principal",
    "grants_of",
    "principal_by_token",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or service account as the access projection knows it."""

    principal_id: str
    type: str
    display_name: str
    roles: tuple[str, ...]
    status: str

    @property
    def active(self) -> bool:
        return self.status == "active"


def get_principal(conn: Connection, principal_id: str) -> Principal | None:
    row = conn.execute(
        sa.select(t.principals).where(t.principals.c.principal_id == principal_id)
    ).first()
    if row is None:
        return None
    return Principal(
        row.principal_id, row.type, row.display_name, tuple(loads(row.roles)), row.status
    )


def grants_of(conn: Connection, principal_id: str) -> dict[str, set[str]]:
    """scope → roles held by the principal."""
    out: dict[str, set[str]] = defaultdict(set)
    rows = conn.execute(
        sa.select(t.grants.c.scope, t.grants.c.role).where(t.grants.c.principal_id == principal_id)
    )
    for scope, role in rows:
        out[scope].add(role)
    return dict(out)


def authority(conn: Connection, principal_id: str) -> tuple[bool, dict[str, set[str]]]:
    """(is the principal active, scope → roles) in one query: every command asks this."""
    rows = raw.execute(
        conn,
        "SELECT p.status, g.scope, g.role FROM access_principals p "
        "LEFT JOIN access_grants g ON g.principal_id = p.principal_id WHERE p.principal_id = ?",
        (principal_id,),
    )
    grants: dict[str, set[str]] = defaultdict(set)
    for _, scope, role in rows:
        if scope is not None:
            grants[scope].add(role)
    return bool(rows) and rows[0][0] == "active", dict(grants)


def active_keys(conn: Connection, principal_id: str | None = None) -> list[dict[str, str]]:
    """Registered, unrevoked public keys (of one principal, or of all)."""
    query = sa.select(t.principal_keys).where(t.principal_keys.c.status == "active")
    if principal_id is not None:
        query = query.where(t.principal_keys.c.principal_id == principal_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def principal_by_token(conn: Connection, token_sha256: str) -> str | None:
    return conn.execute(
        sa.select(t.tokens.c.principal_id).where(
            t.tokens.c.token_sha256 == token_sha256, t.tokens.c.status == "active"
        )
    ).scalar()
