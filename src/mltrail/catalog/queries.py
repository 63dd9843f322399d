"""Reads of the catalog projections (current state). Pure SQL in, plain dicts out."""

from __future__ import annotations

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
    "version_slot",
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


# One statement instead of four: registering a version asks all of this, every time.
_VERSION_SLOT = """
SELECT
  EXISTS (SELECT 1 FROM catalog_models WHERE name = ?),
  EXISTS (SELECT 1 FROM catalog_runs WHERE run_id = ?),
  (SELECT max(number) FROM catalog_versions WHERE model = ?),
  (SELECT min(seq) FROM catalog_versions
     WHERE model = ? AND manifest_sha256 = ? AND run_id {run})
"""
_VERSION_SLOT_RUN = _VERSION_SLOT.format(run="= ?")
_VERSION_SLOT_NO_RUN = _VERSION_SLOT.format(run="IS NULL")


def version_slot(
    conn: Connection, model: str, manifest_sha256: str, run: str | None
) -> VersionSlot:
    """The next version of ``model`` for these files from run ``run`` (None: no run).

    Raises:
        NotFoundError: the model, or the run, is not registered.
    """
    params: tuple[str, ...]
    if run is None:
        sql, params = _VERSION_SLOT_NO_RUN, (model, "", model, model, manifest_sha256)
    else:
        sql, params = _VERSION_SLOT_RUN, (model, run, model, model, manifest_sha256, run)
    [(has_model, has_run, top, existing)] = raw.execute(conn, sql, params)
    if not has_model:
        raise _not_registered("model", model)
    if run is not None and not has_run:
        raise _not_registered("run", run)
    return VersionSlot(int(top or 0) + 1, None if existing is None else int(existing))


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
