"""Prediction rows point into their batch's records artifact instead of holding a copy.

A prediction row carried its canonical record (about 200 bytes) although the batch's
records artifact, written by the same ingest, holds the same bytes: each prediction was
written twice, and the row was the widest thing in the database. The row now holds where
its record is (offset and size in the artifact) and its batch's event seq instead of the
batch's UUID, keyed by the prediction id alone (no rowid on SQLite): one narrow B-tree
insert per prediction. The batch row gains the artifact's digest, taken from its event.

Downgrading needs the records back from the artifact store: the code running the
migration hands a reader over as ``config.attributes["read_artifact"]`` (digest → bytes).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCHES = "catalog_prediction_batches"
_PREDICTIONS = "catalog_predictions"
_NEW = "catalog_predictions_0007"


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table(_BATCHES) as batch:
        batch.add_column(sa.Column("records_sha256", sa.Text(), nullable=True))
    bodies = conn.execute(
        sa.text(
            f"SELECT b.batch_id, e.body FROM {_BATCHES} b JOIN ledger_events e ON e.seq = b.seq"
        )
    ).all()
    for batch_id, body in bodies:
        digest = json.loads(bytes(body))["integrity"]["artifact_sha256"]
        conn.execute(
            sa.text(f"UPDATE {_BATCHES} SET records_sha256 = :d WHERE batch_id = :b"),
            {"d": digest, "b": batch_id},
        )
    with op.batch_alter_table(_BATCHES) as batch:
        batch.alter_column("records_sha256", existing_type=sa.Text(), nullable=False)
        batch.create_index("ix_batches_seq", ["seq"], unique=True)
    op.create_table(
        _NEW,
        sa.Column("prediction_id", sa.Text(), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("record_offset", sa.BigInteger(), nullable=False),
        sa.Column("record_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id"),
        sqlite_with_rowid=False,
    )
    # Record i of a batch starts after records 0..i-1 and their newlines.
    conn.execute(
        sa.text(
            f"INSERT INTO {_NEW} (prediction_id, batch_seq, position, record_offset, record_size) "
            "SELECT p.prediction_id, b.seq, p.position, "
            "COALESCE(SUM(length(p.record) + 1) OVER (PARTITION BY p.batch_id "
            "ORDER BY p.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), "
            f"length(p.record) FROM {_PREDICTIONS} p JOIN {_BATCHES} b ON b.batch_id = p.batch_id"
        )
    )
    op.drop_table(_PREDICTIONS)
    op.rename_table(_NEW, _PREDICTIONS)
    _rename_primary_key(conn)


def downgrade() -> None:
    conn = op.get_bind()
    op.create_table(
        _NEW,
        sa.Column("prediction_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id"),
    )
    batches = conn.execute(sa.text(f"SELECT batch_id, seq, records_sha256 FROM {_BATCHES}")).all()
    for batch_id, seq, digest in batches:
        records = _reader()(digest).split(b"\n")
        rows = conn.execute(
            sa.text(f"SELECT prediction_id, position FROM {_PREDICTIONS} WHERE batch_seq = :s"),
            {"s": seq},
        ).all()
        if rows:
            conn.execute(
                sa.text(f"INSERT INTO {_NEW} VALUES (:p, :b, :i, :r)"),
                [{"p": p, "b": batch_id, "i": i, "r": records[i]} for p, i in rows],
            )
    op.drop_table(_PREDICTIONS)
    op.rename_table(_NEW, _PREDICTIONS)
    _rename_primary_key(conn)
    with op.batch_alter_table(_BATCHES) as batch:
        batch.drop_index("ix_batches_seq")
        batch.drop_column("records_sha256")


def _reader() -> Callable[[str], bytes]:
    read = context.config.attributes.get("read_artifact")
    if read is None:
        raise RuntimeError(
            "downgrading below 0007 copies prediction records back from the artifact store; "
            "pass a reader as config.attributes['read_artifact']"
        )
    return read  # type: ignore[no-any-return]


def _rename_primary_key(conn: sa.Connection) -> None:
    """PostgreSQL names a primary key after its table when it is made: keep the name the
    table had, which the declared schema (and autogenerate) expects."""
    if conn.dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE {_PREDICTIONS} RENAME CONSTRAINT {_NEW}_pkey TO {_PREDICTIONS}_pkey"
        )
