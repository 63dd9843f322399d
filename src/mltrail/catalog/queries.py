"""Reads of the catalog projections (current state). Pure SQL in, plain dicts out."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.canonical import loads
from mltrail.errors import NotFoundError
from mltrail.storage import raw
from mltrail.storage import schema as t

__all__ = [
    "find",
    "get",
    "list_versions",
    "prediction",
    "production_version",
    "resolve_alias",
    "version_slots",
]

_KEYS: dict[str, tuple[sa.Table, str, str]] = {
    "dataset": (t.datasets, "dataset_id", "mltrail dataset register"),
    "commit": (t.commits, "commit_id", "mltrail code register"),
    "environment": (t.environments, "environment_id", "mltrail env register"),
    "run": (t.runs, "run_id", "mltrail run register"),
    "model": (t.models, "name", "mltrail model register"),
    "model_version": (t.versions, "version_id", "mltrail model add-version"),
    "deployment": (t.deployments, "deployment_id", "mltrail deploy"),
    "prediction_batch": (t.prediction_batches, "batch_id", "mltrail predictions log"),
    "prediction": (t.predictions, "prediction_id", "mltrail predictions log"),
}
_JSON_COLUMNS = frozenset({"params", "metrics", "flags", "roles"})


_FIND = {
    kind: f"SELECT * FROM {table.name} WHERE {column} = ?"
    for kind, (table, column, _) in _KEYS.items()
}


def find(conn: Connection, kind: str, key: str) -> dict[str, Any] | None:
    """The projection row of ``kind`` (dataset, run, model_version…) with id ``key``."""
    rows = raw.fetch_dicts(conn, _FIND[kind], (key,))
    return _decode(rows[0]) if rows else None


def get(conn: Connection, kind: str, key: str) -> dict[str, Any]:
    """Like `find`, but a missing row is a NotFoundError that says how to create one."""
    row = find(conn, kind, key)
    if row is None:
        raise _not_registered(kind, key)
    return row


def _not_registered(kind: str, key: str) -> NotFoundError:
    return NotFoundError(
        f"{kind.replace('_', ' ')} {key!r} is not registered",
        hint=f"register it first (`{_KEYS[kind][2]}`)",
    )


_PREDICTION = (
    "SELECT p.prediction_id, p.position, p.record_offset, p.record_size, b.batch_id, "
    "b.records_sha256 FROM catalog_predictions p "
    "JOIN catalog_prediction_batches b ON b.seq = p.batch_seq WHERE p.prediction_id = ?"
)


def prediction(conn: Connection, prediction_id: str) -> dict[str, Any]:
    """A logged prediction: its batch, its leaf ``position`` in the batch's tree, and where
    its record is (``record_size`` bytes at ``record_offset`` in the artifact
    ``records_sha256``).

    Raises:
        NotFoundError: no prediction has that id.
    """
    rows = raw.fetch_dicts(conn, _PREDICTION, (prediction_id,))
    if not rows:
        raise _not_registered("prediction", prediction_id)
    return rows[0]


def list_versions(conn: Connection, model: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(t.versions).where(t.versions.c.model == model).order_by(t.versions.c.number)
    ).mappings()
    return [_decode(dict(r)) for r in rows]


def production_version(conn: Connection, model: str) -> str | None:
    """The version of ``model`` currently in the production stage, if any."""
    rows = raw.execute(
        conn,
        "SELECT version_id FROM catalog_versions WHERE model = ? AND stage = 'production' "
        "ORDER BY stage_seq DESC LIMIT 1",
        (model,),
    )
    return str(rows[0][0]) if rows else None


def resolve_alias(conn: Connection, model: str, alias: str) -> str | None:
    rows = raw.execute(
        conn, "SELECT version_id FROM catalog_aliases WHERE model = ? AND alias = ?", (model, alias)
    )
    return str(rows[0][0]) if rows else None


@dataclass(frozen=True, slots=True)
class VersionSlot:
    """Where a new version of a model goes: its number, unless the same files from the
    same run are registered already (``existing``, that version's log index)."""

    number: int
    existing: int | None


def version_slots(
    conn: Connection, model: str, wanted: Sequence[tuple[str, str | None]]
) -> list[VersionSlot]:
    """Where each (manifest digest, run or None) of ``wanted`` goes among the versions of
    ``model``, asked in one statement. New versions are numbered on from the model's
    highest, in order; a pair that appears again in ``wanted`` gets the slot of its first
    appearance, as it would if the first were registered before the second is asked about.

    Raises:
        NotFoundError: the model, or one of the runs (the first missing, in order), is
            not registered.
    """
    params = [value for i, (digest, run) in enumerate(wanted) for value in (i, digest, run)]
    rows = raw.execute(conn, _version_slots_sql(len(wanted)), (*params, model, model, model))
    if not rows or not rows[0][0]:
        raise _not_registered("model", model)
    top = int(rows[0][1] or 0)
    slots: dict[tuple[str, str | None], VersionSlot] = {}
    for (_, _, has_run, existing), pair in zip(rows, wanted, strict=True):
        if not has_run:
            raise _not_registered("run", str(pair[1]))
        if pair not in slots:
            if existing is None:
                top += 1
            slots[pair] = VersionSlot(top if existing is None else top + 1, existing)
    return [slots[pair] for pair in wanted]


@functools.lru_cache(maxsize=16)
def _version_slots_sql(count: int) -> str:
    """One statement for ``count`` pairs instead of four per pair: registering a version
    asks all of this, every time. Built once per batch size (mostly 1)."""
    pairs = ", ".join(["(?, ?, ?)"] * count)
    # `run_id = w.run OR both NULL` rather than IS NOT DISTINCT FROM: SQLite before 3.39
    # does not know it, and the (model, manifest_sha256) index does the narrowing anyway.
    return f"""
WITH wanted (i, digest, run) AS (VALUES {pairs})
SELECT
  EXISTS (SELECT 1 FROM catalog_models WHERE name = ?),
  (SELECT max(number) FROM catalog_versions WHERE model = ?),
  w.run IS NULL OR EXISTS (SELECT 1 FROM catalog_runs WHERE run_id = w.run),
  (SELECT min(seq) FROM catalog_versions
     WHERE model = ? AND manifest_sha256 = w.digest
       AND (run_id = w.run OR (run_id IS NULL AND w.run IS NULL)))
FROM wanted AS w
ORDER BY w.i
"""


def run_datasets(conn: Connection, run_id: str) -> list[str]:
    rows = conn.execute(
        sa.select(t.lineage_edges.c.dst_id)
        .where(
            t.lineage_edges.c.src_type == "run",
            t.lineage_edges.c.src_id == run_id,
            t.lineage_edges.c.role == "used",
        )
        .order_by(t.lineage_edges.c.dst_id)
    )
    return [r[0] for r in rows]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for column in _JSON_COLUMNS & row.keys():
        if isinstance(row[column], str):
            row[column] = loads(row[column])
    if isinstance(row.get("digests"), bytes | memoryview):
        row["digests"] = bytes(row["digests"])
    return row
