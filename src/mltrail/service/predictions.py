"""Prediction logs: batched ingest with one ledger event per batch, and per-prediction proofs.

The records, their canonical bytes and their batch trees are `mltrail.catalog.predictions`;
this module logs them: one `log_predictions` event per deployment and version carrying the
batch's Merkle root, the rows projected in the same transaction, so one prediction is
provable record → batch root → ledger entry → signed checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from mltrail.canonical import loads
from mltrail.catalog import queries
from mltrail.catalog.predictions import (
    RecordColumns,
    deployments_named,
    parse_records,
    records_given,
    seal_records,
    split_digests,
)
from mltrail.catalog.projector import project_events
from mltrail.errors import ConflictError, VerificationError
from mltrail.events import Action, Draft, Event, Ref, SubjectType, uuid7
from mltrail.ledger import merkle
from mltrail.ledger.log import collector_paused
from mltrail.privacy.redaction import keyed_hash
from mltrail.service.base import Appended
from mltrail.service.catalog import CatalogUseCases
from mltrail.storage import raw
from mltrail.storage import schema as t
from mltrail.storage.database import DRIVER_INTEGRITY_ERRORS

__all__ = ["PredictionUseCases"]

_sha256 = hashlib.sha256
_COLUMNS = ("prediction_id", "batch_seq", "position", "record_offset", "record_size")
_SET_DIGESTS = "UPDATE catalog_prediction_batches SET digests = ? WHERE batch_id = ?"


class PredictionUseCases(CatalogUseCases):
    """Logging predictions and proving them."""

    def input_hmac(self, value: Any) -> str:
        """The keyed hash under which a sensitive value may enter the log."""
        return keyed_hash(self.secret, value)

    def log_predictions(
        self, records: Iterable[Mapping[str, Any]], *, keep_inputs: bool = True
    ) -> list[Appended]:
        """Ingest prediction records; one batch (and event) per deployment and version.

        Each record has ``prediction_id``, ``deployment``, ``output`` and either ``input``
        (raw; hashed with HMAC, kept in the payload store when ``keep_inputs``) or
        ``input_hmac``; ``timestamp`` defaults to now (one reading of the clock per call),
        ``version`` to what the deployment serves. Everything is validated before anything
        is written, and all batches are written in one transaction.

        Raises:
            NotFoundError: a record names an unknown deployment or model version.
            ConflictError: a prediction id is already logged.
            InvalidInputError: a record is malformed or a batch is too large.
        """
        self._require("log_predictions")
        items = records_given(records)
        deployments = deployments_named(items)
        served = self._served_versions(set(deployments))
        with collector_paused():  # a batch is 100,000 records kept alive, no cycles
            groups = parse_records(items, deployments, served, self.secret, self.clock)
            self._check_versions({group.version for group in groups})
            prepared = [self._prepare_batch(group, keep_inputs) for group in groups]

        def project(conn: Any, events: Sequence[Event]) -> None:
            project_events(conn, events)
            for batch, event in zip(prepared, events, strict=True):
                _insert_batch(conn, event, batch.pids, batch.sizes, batch.digests)
                self._keep_inputs(conn, batch.inputs, event)

        try:  # every batch in one transaction: all of them are logged, or none
            return self._append([b.draft for b in prepared], project=project)
        except _DuplicatePredictionError as exc:
            logged = self._logged([pid for group in groups for pid in group.pids])
            raise ConflictError(
                f"prediction ids already logged: {', '.join(logged[:5])}",
                hint="prediction ids are unique; a logged prediction cannot be replaced",
            ) from exc

    def _check_versions(self, versions: set[str]) -> None:
        """A record may name its version; it must be a registered one."""
        with self.db.read() as conn:
            for version in sorted(versions):
                queries.get(conn, "model_version", version)

    def _served_versions(self, deployments: set[str]) -> dict[str, str]:
        """What each named deployment serves now; retired ones take no predictions."""
        served = {}
        with self.db.read() as conn:
            for name in sorted(deployments):
                row = queries.get(conn, "deployment", name)
                if row["status"] != "active":
                    raise ConflictError(
                        f"deployment {name!r} is retired; it serves no predictions",
                        hint="log them against the deployment that replaced it",
                    )
                served[name] = str(row["version_id"])
        return served

    def _prepare_batch(self, group: RecordColumns, keep_inputs: bool) -> _Prepared:
        sealed = seal_records(group)
        stored = self.store.put_bytes(sealed.records)  # what the rows point into
        batch_id = uuid7()
        meta = {
            "deployment": group.deployment,
            "version": group.version,
            "count": len(sealed.sizes),
            "root": sealed.root.hex(),
            "first_at": min(group.stamps),
            "last_at": max(group.stamps),
        }
        draft = self._draft(
            Action.LOG_PREDICTIONS,
            Ref(SubjectType.PREDICTION_BATCH, batch_id),
            related=[
                Ref(SubjectType.DEPLOYMENT, group.deployment, role="served_by"),
                Ref(SubjectType.MODEL_VERSION, group.version, role="served_by_version"),
            ],
            metadata=meta,
            artifact_sha256=stored.digest,
        )
        inputs = (
            [(pid, *given) for pid, given in zip(group.pids, group.inputs, strict=True) if given]
            if keep_inputs and any(group.inputs)
            else []
        )
        return _Prepared(draft, group.pids, sealed.sizes, sealed.digests, inputs)

    def _store_records(self, conn: Any, event: Event, blobs: Sequence[bytes]) -> None:
        """Project a batch's records from its stored file (rebuild): the rows and digests
        that ingest wrote."""
        pids = [loads(b)["prediction_id"] for b in blobs]
        digests = b"".join(_sha256(b).digest() for b in blobs)
        _insert_batch(conn, event, pids, list(map(len, blobs)), digests)

    def _record(self, row: Mapping[str, Any]) -> bytes:
        """A prediction's canonical record, read from its batch's records artifact
        (unchecked: a proof checks it against the batch's tree)."""
        return self.store.read_range(
            str(row["records_sha256"]), int(row["record_offset"]), int(row["record_size"])
        )

    def _logged(self, ids: Sequence[str]) -> list[str]:
        with self.db.read() as conn:
            return [
                pid
                for start in range(0, len(ids), 500)
                for (pid,) in conn.execute(
                    sa.select(t.predictions.c.prediction_id).where(
                        t.predictions.c.prediction_id.in_(ids[start : start + 500])
                    )
                )
            ]

    def _keep_inputs(
        self, conn: Any, inputs: Sequence[tuple[str, bytes, str | None]], event: Event
    ) -> None:
        """Hook for the privacy use cases (payload store); nothing kept by default.

        Each input is ``(prediction id, canonical bytes of the raw input, data subject)``.
        """

    # -- proofs ----------------------------------------------------------------------------

    def prove_prediction(self, prediction_id: str) -> dict[str, Any]:
        """Record → batch root → ledger entry → signed checkpoint, each step checked here.

        Raises:
            NotFoundError: the prediction is not logged.
            VerificationError: a stored record or batch does not match what was logged.
        """
        with self.db.read() as conn:
            row = queries.prediction(conn, prediction_id)
            batch = queries.get(conn, "prediction_batch", row["batch_id"])
        position = row["position"]
        digests = split_digests(batch)
        record = self._record(row)
        record_sha256 = _sha256(record).digest()
        if record_sha256 != digests[position]:
            raise VerificationError(
                f"stored record of prediction {prediction_id} does not match its digest"
            )
        leaves = [merkle.leaf_hash(d) for d in digests]
        proof = merkle.inclusion_proof(leaves, position)
        root = bytes.fromhex(batch["root"])
        merkle.verify_inclusion(leaves[position], position, len(leaves), proof, root)
        receipt = self.prove_event(int(batch["seq"]))
        event = self.log.event(int(batch["seq"]))
        if event.metadata.get("root") != batch["root"]:
            raise VerificationError(f"batch {batch['batch_id']} root differs from its ledger event")
        return {
            "prediction_id": prediction_id,
            "record": loads(record),
            "record_sha256": record_sha256.hex(),
            "batch": {
                "batch_id": batch["batch_id"],
                "index": position,
                "size": len(leaves),
                "root": batch["root"],
                "proof": [h.hex() for h in proof],
            },
            "ledger": {
                "index": receipt.index,
                "event_sha256": receipt.event_sha256,
                "proof": [h.hex() for h in receipt.proof],
            },
            "checkpoint": receipt.checkpoint,
            "verifier_key": self.verifier_key,
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One batch ready to append: its event, its predictions, the raw inputs to keep."""

    draft: Draft
    pids: list[str]  # in leaf order
    sizes: list[int]  # of each canonical record, in leaf order
    digests: bytes  # the records' SHA-256 digests in leaf order, 32 bytes each
    inputs: list[tuple[str, bytes, str | None]]


# -- storing ---------------------------------------------------------------------------


def _insert_batch(
    conn: Any, event: Event, pids: list[str], sizes: list[int], digests: bytes
) -> None:
    """A batch's prediction rows, each pointing at its record in the batch's records
    artifact (joined by newlines: record i starts after i newlines), and the leaf digests
    beside the batch (proofs read them in one row instead of one row per prediction)."""
    offsets = accumulate([size + 1 for size in sizes[:-1]], initial=0)  # one per record
    rows = list(zip(pids, repeat(event.seq), range(len(pids)), offsets, sizes, strict=False))
    # By prediction id (unique: the key alone orders, at half the cost of comparing
    # tuples): the key's B-tree then fills page by page, not at random.
    rows.sort(key=itemgetter(0))
    try:
        raw.insert_rows(conn, t.predictions, _COLUMNS, rows)
    except (sa.exc.IntegrityError, *DRIVER_INTEGRITY_ERRORS) as exc:
        raise _DuplicatePredictionError("a prediction id in this batch is already logged") from exc
    raw.execute(conn, _SET_DIGESTS, (digests, event.subject.id))


class _DuplicatePredictionError(ConflictError):
    """Raised inside the append; re-raised outside it with the ids named."""
