"""The log stores subtree hashes from level 4 up; lower ones are rehashed when needed.

A node row per leaf was the largest part of an append after the event itself: every
append wrote about as many node rows as events, each a B-tree insert. A proof needs at
most one subtree per level, and one below level 4 is the hash of at most 16 leaf digests
that one range read returns, so only a sixteenth of the rows are kept (see
`LEDGER_NODES_MIN_LEVEL`). Upgrading deletes the lower rows (the insert-only triggers are
dropped for it; `upgrade` reinstalls them); downgrading rehashes them from the digests.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from mltrail.storage.triggers import drop_statements

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FLOOR = 4  # LEDGER_NODES_MIN_LEVEL when this revision was written


def upgrade() -> None:
    conn = op.get_bind()
    for statement in drop_statements(conn.dialect.name, "ledger_nodes"):
        conn.execute(sa.text(statement))
    conn.execute(sa.text("DELETE FROM ledger_nodes WHERE level < :floor"), {"floor": _FLOOR})


def downgrade() -> None:
    conn = op.get_bind()
    digests = conn.execute(sa.text("SELECT event_sha256 FROM ledger_events ORDER BY seq"))
    level = [hashlib.sha256(b"\x00" + bytes(digest)).digest() for (digest,) in digests]
    rows = []
    for height in range(1, _FLOOR):
        level = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        rows += [{"level": height, "idx": idx, "hash": node} for idx, node in enumerate(level)]
    if rows:
        conn.execute(
            sa.text("INSERT INTO ledger_nodes (level, idx, hash) VALUES (:level, :idx, :hash)"),
            rows,
        )
