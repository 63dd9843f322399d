"""Prediction logs: batched ingest with one ledger event per batch, and per-prediction proofs.

A record is ``{prediction_id, deployment, version, timestamp, input_hmac, output}``; raw
inputs never enter it, only their keyed hash (HMAC-SHA-256 with the registry secret).
Each batch is a Merkle tree over the records' SHA-256 digests (RFC 6962, the same hashing
as the log); its root goes into the batch's `log_predictions` event, so one prediction is
provable record → batch root → ledger entry → signed checkpoint.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mltrail.canonical import canonicalize, encode_string, loads
from mltrail.catalog import queries
from mltrail.catalog.ids import check_id, normalize_version
from mltrail.catalog.projector import project_events
from mltrail.errors import ConflictError, InvalidInputError, VerificationError
from mltrail.events import (
    CANONICAL_TIMESTAMP,
    Action,
    Draft,
    Event,
    Ref,
    SubjectType,
    format_timestamp,
    parse_timestamp,
    uuid7,
)
from mltrail.ledger import merkle
from mltrail.privacy.redaction import keyed_hash
from mltrail.service.base import Appended
from mltrail.service.catalog import CatalogUseCases
from mltrail.storage import raw
from mltrail.storage import schema as t
from mltrail.storage.database import DRIVER_INTEGRITY_ERRORS

__all__ = ["PredictionRecord", "PredictionUseCases", "record_leaf"]

MAX_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One logged prediction, as stored and proven (no raw input)."""

    prediction_id: str
    deployment: str
    version: str
    timestamp: str
    input_hmac: str
    output: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "deployment": self.deployment,
            "version": self.version,
            "timestamp": self.timestamp,
            "input_hmac": self.input_hmac,
            "output": self.output,
        }

    def to_bytes(self) -> bytes:
        """``canonicalize(self.to_dict())``, built piecewise: the keys are fixed and sorted,
        so only the values need encoding (a property test holds the two equal)."""
        q = encode_string
        text = (
            f'{{"deployment":{q(self.deployment)},"input_hmac":{q(self.input_hmac)},'
            f'"output":{canonicalize(self.output).decode()},"prediction_id":{q(self.prediction_id)},'
            f'"timestamp":{q(self.timestamp)},"version":{q(self.version)}}}'
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"prediction {self.prediction_id!r} holds a lone surrogate"
            ) from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictionRecord:
        return cls(**loads(data))


def record_leaf(record_bytes: bytes) -> bytes:
    """The Merkle leaf hash of a record: RFC 6962 leaf over the record's SHA-256."""
    return merkle.leaf_hash(hashlib.sha256(record_bytes).digest())


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
        ``input_hmac``; ``timestamp`` defaults to now, ``version`` to what the deployment
        serves. Everything is validated before anything is written.

        Raises:
            NotFoundError: a record names an unknown deployment or model version.
            ConflictError: a prediction id is already logged.
            InvalidInputError: a record is malformed or a batch is too large.
        """
        self._require("log_predictions")
        raw = list(records)
        if not raw:
            raise InvalidInputError("no prediction records given")
        if len(raw) > MAX_BATCH:
            raise InvalidInputError(
                f"{len(raw)} records in one call; send at most {MAX_BATCH} at a time"
            )
        secret = self.secret
        for position, item in enumerate(raw):
            if not isinstance(item, Mapping) or not item.get("deployment"):
                raise InvalidInputError(
                    f"prediction record {position} has no deployment",
                    hint="each record needs prediction_id, deployment and output",
                )
        served = self._served_versions({str(r["deployment"]) for r in raw})
        groups: dict[tuple[str, str], list[tuple[PredictionRecord, Any, str | None]]] = defaultdict(
            list
        )
        for item in raw:
            record, raw_input = _record(item, served, secret, self.clock)
            subject = str(item["subject"]) if item.get("subject") is not None else None
            groups[(record.deployment, record.version)].append((record, raw_input, subject))
        _check_unique([r for group in groups.values() for r, _, _ in group])
        self._check_versions({version for _, version in groups})
        prepared = [self._prepare_batch(group, keep_inputs) for group in groups.values()]

        def project(conn: Any, events: Sequence[Event]) -> None:
            project_events(conn, events)
            for batch, event in zip(prepared, events, strict=True):
                _insert_predictions(conn, batch.rows)
                self._keep_inputs(conn, batch.inputs, event)

        try:  # every batch in one transaction: all of them are logged, or none
            return self._append([b.draft for b in prepared], project=project)
        except _DuplicatePredictionError as exc:
            logged = self._logged([r for group in groups.values() for r, _, _ in group])
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

    def _prepare_batch(
        self, group: Sequence[tuple[PredictionRecord, Any, str | None]], keep_inputs: bool
    ) -> _Prepared:
        records = [r for r, _, _ in group]
        blobs = [r.to_bytes() for r in records]
        digests = [hashlib.sha256(b).digest() for b in blobs]
        root = merkle.root_hash([merkle.leaf_hash(d) for d in digests])
        stored = self.store.put_bytes(b"\n".join(blobs))
        batch_id = uuid7()
        times = sorted(r.timestamp for r in records)
        meta = {
            "deployment": records[0].deployment,
            "version": records[0].version,
            "count": len(records),
            "root": root.hex(),
            "first_at": times[0],
            "last_at": times[-1],
        }
        draft = self._draft(
            Action.LOG_PREDICTIONS,
            Ref(SubjectType.PREDICTION_BATCH, batch_id),
            related=[
                Ref(SubjectType.DEPLOYMENT, records[0].deployment, role="served_by"),
                Ref(SubjectType.MODEL_VERSION, records[0].version, role="served_by_version"),
            ],
            metadata=meta,
            artifact_sha256=stored.digest,
        )
        rows = [
            (r.prediction_id, batch_id, i, d, b)
            for i, (r, d, b) in enumerate(zip(records, digests, blobs, strict=True))
        ]
        inputs = (
            [(r.prediction_id, raw, who) for r, raw, who in group if raw is not None]
            if keep_inputs
            else []
        )
        return _Prepared(draft, rows, inputs)

    def _logged(self, records: Sequence[PredictionRecord]) -> list[str]:
        ids = [r.prediction_id for r in records]
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
        self, conn: Any, inputs: Sequence[tuple[str, Any, str | None]], event: Event
    ) -> None:
        """Hook for the privacy use cases (payload store); nothing kept by default."""

    # -- proofs ----------------------------------------------------------------------------

    def prove_prediction(self, prediction_id: str) -> dict[str, Any]:
        """Record → batch root → ledger entry → signed checkpoint, each step checked here.

        Raises:
            NotFoundError: the prediction is not logged.
            VerificationError: a stored record or batch does not match what was logged.
        """
        with self.db.read() as conn:
            row = queries.get(conn, "prediction", prediction_id)
            batch = queries.get(conn, "prediction_batch", row["batch_id"])
            digests = [
                bytes(d)
                for (d,) in conn.execute(
                    sa.select(t.predictions.c.record_sha256)
                    .where(t.predictions.c.batch_id == row["batch_id"])
                    .order_by(t.predictions.c.position)
                )
            ]
        if hashlib.sha256(row["record"]).digest() != row["record_sha256"]:
            raise VerificationError(
                f"stored record of prediction {prediction_id} does not match its digest"
            )
        leaves = [merkle.leaf_hash(d) for d in digests]
        proof = merkle.inclusion_proof(leaves, row["position"])
        root = bytes.fromhex(batch["root"])
        merkle.verify_inclusion(leaves[row["position"]], row["position"], len(leaves), proof, root)
        receipt = self.prove_event(int(batch["seq"]))
        event = self.log.event(int(batch["seq"]))
        if event.metadata.get("root") != batch["root"]:
            raise VerificationError(f"batch {batch['batch_id']} root differs from its ledger event")
        return {
            "prediction_id": prediction_id,
            "record": loads(row["record"]),
            "record_sha256": row["record_sha256"].hex(),
            "batch": {
                "batch_id": batch["batch_id"],
                "index": row["position"],
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
    """One batch ready to append: its event, its prediction rows, the raw inputs to keep."""

    draft: Draft
    rows: list[tuple[Any, ...]]  # columns of _INSERT_PREDICTION
    inputs: list[tuple[str, Any, str | None]]


def _record(
    item: Mapping[str, Any], served: Mapping[str, str], secret: bytes, clock: Any
) -> tuple[PredictionRecord, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"a prediction record must be an object, got {item!r}")
    pid = check_id(item.get("prediction_id"), "prediction id")  # type: ignore[arg-type]
    deployment = str(item["deployment"])
    version = normalize_version(str(item["version"])) if item.get("version") else served[deployment]
    if "input" in item:
        raw_input = item["input"]
        digest = keyed_hash(secret, raw_input)
    elif "input_hmac" in item:
        raw_input, digest = None, str(item["input_hmac"])
    else:
        raise InvalidInputError(f"prediction {pid!r} has neither input nor input_hmac")
    if "output" not in item:
        raise InvalidInputError(f"prediction {pid!r} has no output")
    stamp = item.get("timestamp")
    if not stamp:
        when = clock()
    elif isinstance(stamp, str) and CANONICAL_TIMESTAMP.match(stamp) and _real_time(stamp):
        when = stamp  # already in the registry's form: skip the parse/format round trip
    else:
        when = format_timestamp(parse_timestamp(stamp))
    return PredictionRecord(pid, deployment, str(version), when, digest, item["output"]), raw_input


_INSERT_PREDICTION = (
    "INSERT INTO catalog_predictions (prediction_id, batch_id, position, record_sha256, record) "
    "VALUES (?, ?, ?, ?, ?)"
)


def _real_time(stamp: str) -> bool:
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return True


def _insert_predictions(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    try:
        raw.executemany(conn, _INSERT_PREDICTION, rows)
    except (sa.exc.IntegrityError, *DRIVER_INTEGRITY_ERRORS) as exc:
        raise _DuplicatePredictionError("a prediction id in this batch is already logged") from exc


class _DuplicatePredictionError(ConflictError):
    """Raised inside the append; re-raised outside it with the ids named."""


def _check_unique(records: Sequence[PredictionRecord]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.prediction_id in seen:
            raise InvalidInputError(
                f"prediction id {record.prediction_id!r} appears twice in the records"
            )
        seen.add(record.prediction_id)
