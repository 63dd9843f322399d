"""The ledger's sequence keys become SQLite rowids; the subject index leaves the log.

On SQLite a primary key declared BIGINT is a separate index beside the table's own rowid,
so every append wrote two B-trees for the one key; declared INTEGER it is the rowid itself.
The tables are rebuilt with their rows (SQLite cannot change a column's type in place);
PostgreSQL keeps BIGINT. `upgrade` reinstalls the insert-only triggers afterwards, as it
does after every migration.

The index on (subject_type, subject_id) took a random insert on every append, and its cost
grew with the log; the registry finds a subject's events through `event_refs` instead.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEYS = (("ledger_events", "seq"), ("ledger_checkpoints", "size"))


def upgrade() -> None:
    op.drop_index("ix_ledger_events_subject", table_name="ledger_events")
    _retype(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())
    op.create_index("ix_ledger_events_subject", "ledger_events", ["subject_type", "subject_id"])


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column in _KEYS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(column, existing_type=old, type_=new, existing_nullable=False)
