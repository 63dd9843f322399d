"""A prediction batch keeps its records' digests; prediction rows lose theirs and an index.

Each prediction row carried its record's SHA-256 (derivable from the record beside it), and
an index on (batch_id, position) served only one query: a proof reading every digest of the
prediction's batch. The batch row now holds those digests, concatenated in leaf order, so
a proof reads one row and an ingest writes one B-tree per prediction instead of two, and
32 bytes fewer. Upgrading moves the digests of the batches already logged.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCHES = "catalog_prediction_batches"
_PREDICTIONS = "catalog_predictions"


def upgrade() -> None:
    with op.batch_alter_table(_BATCHES) as batch:
        batch.add_column(sa.Column("digests", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    for batch_id in conn.execute(sa.text(f"SELECT batch_id FROM {_BATCHES}")).scalars().all():
        digests = conn.execute(
            sa.text(
                f"SELECT record_sha256 FROM {_PREDICTIONS} WHERE batch_id = :b ORDER BY position"
            ),
            {"b": batch_id},
        ).scalars()
        conn.execute(
            sa.text(f"UPDATE {_BATCHES} SET digests = :d WHERE batch_id = :b"),
            {"d": b"".join(bytes(d) for d in digests), "b": batch_id},
        )
    with op.batch_alter_table(_PREDICTIONS) as batch:
        batch.drop_index("ix_predictions_batch")
        batch.drop_column("record_sha256")


def downgrade() -> None:
    with op.batch_alter_table(_PREDICTIONS) as batch:
        batch.add_column(sa.Column("record_sha256", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT prediction_id, record FROM {_PREDICTIONS}")).all()
    if rows:
        conn.execute(
            sa.text(f"UPDATE {_PREDICTIONS} SET record_sha256 = :d WHERE prediction_id = :p"),
            [{"d": hashlib.sha256(bytes(record)).digest(), "p": pid} for pid, record in rows],
        )
    with op.batch_alter_table(_PREDICTIONS) as batch:
        batch.alter_column("record_sha256", existing_type=sa.LargeBinary(), nullable=False)
        batch.create_index("ix_predictions_batch", ["batch_id", "position"], unique=False)
    with op.batch_alter_table(_BATCHES) as batch:
        batch.drop_column("digests")
