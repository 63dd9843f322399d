"""Projections of access events: principals, keys, grants, API tokens (hashes only)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mltrail.canonical import dumps_text
from mltrail.catalog.projector import insert_ignore, register_handlers
from mltrail.events import Event
from mltrail.storage import schema as t

__all__: list[str] = []


def _register(conn: Connection, e: Event) -> None:
    kind = e.metadata.get("kind", "principal")
    if kind == "key":
        conn.execute(
            t.principal_keys.insert().values(
                key_id=e.metadata["key_id"],
                principal_id=e.subject.id,
                algorithm=e.metadata["algorithm"],
                public_key=e.metadata["public_key"],
                status="active",
                seq=e.seq,
            )
        )
        return
    conn.execute(
        t.principals.insert().values(
            principal_id=e.subject.id,
            type=e.metadata["principal_type"],
            display_name=e.metadata["display_name"],
            roles=dumps_text(sorted(e.metadata.get("roles", []))),
            status="active",
            seq=e.seq,
        )
    )
    insert_ignore(
        conn,
        t.grants,
        [
            {"principal_id": e.subject.id, "scope": "*", "role": role, "seq": e.seq}
            for role in e.metadata.get("roles", [])
        ],
    )


def _grant(conn: Connection, e: Event) -> None:
    if "token_sha256" in e.metadata:
        conn.execute(
            t.tokens.insert().values(
                token_sha256=e.metadata["token_sha256"],
                principal_id=e.subject.id,
                status="active",
                seq=e.seq,
            )
        )
        return
    insert_ignore(
        conn,
        t.grants,
        [
            {
                "principal_id": e.subject.id,
                "scope": e.metadata["scope"],
                "role": e.metadata["role"],
                "seq": e.seq,
            }
        ],
    )


def _revoke(conn: Connection, e: Event) -> None:
    meta = e.metadata
    if "token_sha256" in meta:
        conn.execute(
            t.tokens.update()
            .where(t.tokens.c.token_sha256 == meta["token_sha256"])
            .values(status="revoked", seq=e.seq)
        )
    elif "key_id" in meta:
        conn.execute(
            t.principal_keys.update()
            .where(t.principal_keys.c.key_id == meta["key_id"])
            .values(status="revoked", seq=e.seq)
        )
    elif "role" in meta:
        conn.execute(
            t.grants.delete().where(
                t.grants.c.principal_id == e.subject.id,
                t.grants.c.scope == meta["scope"],
                t.grants.c.role == meta["role"],
            )
        )
    else:  # the principal itself: every grant, key and token goes with it
        for table in (t.grants,):
            conn.execute(table.delete().where(table.c.principal_id == e.subject.id))
        for table in (t.principal_keys, t.tokens):
            conn.execute(
                table.update().where(table.c.principal_id == e.subject.id).values(status="revoked")
            )
        conn.execute(
            t.principals.update()
            .where(t.principals.c.principal_id == e.subject.id)
            .values(status="revoked", seq=e.seq)
        )


register_handlers(
    {
        ("register", "principal"): _register,
        ("grant_access", "principal"): _grant,
        ("revoke_access", "principal"): _revoke,
    }
)
