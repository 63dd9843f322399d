"""Prediction logs: batched ingest with one ledger event per batch, and per-prediction proofs.

A record is ``{prediction_id, deployment, version, timestamp, input_hmac, output}``; raw
inputs never enter it, only their keyed hash (HMAC-SHA-256 with the registry secret).
Each batch is a Merkle tree over the records' SHA-256 digests (RFC 6962, the same hashing
as the log); its root goes into the batch's `log_predictions` event, so one prediction is
provable record → batch root → ledger entry → signed checkpoint.

Ingest runs once per record at up to 100,000 records a call, so it works on columns (one
list per field, checked in C-level passes) and builds each record's canonical bytes with
one f-string; `PredictionRecord` is the same record as an object, for reading one back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

import sqlalchemy as sa

from mltrail.canonical import canonicalize, encode_string, loads
from mltrail.catalog import queries
from mltrail.catalog.ids import check_ids, normalize_version
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
from mltrail.ledger.log import collector_paused
from mltrail.privacy.redaction import keyed_hash, keyed_hasher
from mltrail.service.base import Appended
from mltrail.service.catalog import CatalogUseCases
from mltrail.storage import raw
from mltrail.storage import schema as t
from mltrail.storage.database import DRIVER_INTEGRITY_ERRORS

__all__ = ["PredictionRecord", "PredictionUseCases", "record_leaf"]

MAX_BATCH = 100_000

_sha256 = hashlib.sha256
_COLUMNS = ("prediction_id", "batch_id", "position", "record")
_TYPES = ("text", "text", "int4", "bytea")  # PostgreSQL's types of _COLUMNS, for binary COPY
_SET_DIGESTS = "UPDATE catalog_prediction_batches SET digests = ? WHERE batch_id = ?"


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
        """``canonicalize(self.to_dict())``, built as ingest builds it (a property test
        holds the two equal)."""
        output = canonicalize(self.output).decode("utf-8")
        texts = _record_texts(
            self.deployment,
            self.version,
            [self.prediction_id],
            [self.timestamp],
            [self.input_hmac],
            [output],
        )
        return _utf8(texts, [self.prediction_id])[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictionRecord:
        return cls(**loads(data))


def record_leaf(record_bytes: bytes) -> bytes:
    """The Merkle leaf hash of a record: RFC 6962 leaf over the record's SHA-256."""
    return merkle.leaf_hash(_sha256(record_bytes).digest())


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
        items = _items(records)
        deployments = _deployments(items)
        served = self._served_versions(set(deployments))
        with collector_paused():  # a batch is 100,000 records kept alive, no cycles
            groups = _parse(items, deployments, served, self.secret, self.clock)
            self._check_versions({group.version for group in groups})
            prepared = [self._prepare_batch(group, keep_inputs) for group in groups]

        def project(conn: Any, events: Sequence[Event]) -> None:
            project_events(conn, events)
            for batch, event in zip(prepared, events, strict=True):
                _insert_batch(conn, batch.batch_id, batch.rows, batch.digests)
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

    def _prepare_batch(self, group: _Group, keep_inputs: bool) -> _Prepared:
        texts = _record_texts(
            group.deployment, group.version, group.pids, group.stamps, group.hmacs, group.outputs
        )
        blobs = _utf8(texts, group.pids)
        digests, root = _tree(blobs)
        stored = self.store.put_bytes(b"\n".join(blobs))
        batch_id = uuid7()
        meta = {
            "deployment": group.deployment,
            "version": group.version,
            "count": len(blobs),
            "root": root.hex(),
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
        rows = list(zip(group.pids, repeat(batch_id), range(len(blobs)), blobs, strict=False))
        rows.sort()  # by prediction id: the key index then fills page by page, not at random
        inputs = (
            [(pid, *given) for pid, given in zip(group.pids, group.inputs, strict=True) if given]
            if keep_inputs and any(group.inputs)
            else []
        )
        return _Prepared(draft, batch_id, rows, b"".join(digests), inputs)

    def _store_records(self, conn: Any, batch_id: str, blobs: Sequence[bytes]) -> None:
        """Project a batch's records from its stored file (rebuild): the rows and digests
        that ingest wrote."""
        rows = [(loads(b)["prediction_id"], batch_id, i, b) for i, b in enumerate(blobs)]
        digests = b"".join(_sha256(b).digest() for b in blobs)
        _insert_batch(conn, batch_id, rows, digests)

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
            row = queries.get(conn, "prediction", prediction_id)
            batch = queries.get(conn, "prediction_batch", row["batch_id"])
        position = row["position"]
        digests = _split_digests(batch)
        record_sha256 = _sha256(row["record"]).digest()
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
            "record": loads(row["record"]),
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
class _Group:
    """Validated records of one deployment and version, as columns."""

    deployment: str
    version: str
    pids: list[str]
    stamps: list[str]
    hmacs: list[str]
    outputs: list[str]  # canonical JSON text of each output
    inputs: list[tuple[bytes, str | None] | None]  # each raw input given: bytes, subject

    def part(self, deployment: str, version: str, where: list[int]) -> _Group:
        """The records at positions ``where``, as the group of that deployment and version."""
        return _Group(
            deployment,
            version,
            [self.pids[i] for i in where],
            [self.stamps[i] for i in where],
            [self.hmacs[i] for i in where],
            [self.outputs[i] for i in where],
            [self.inputs[i] for i in where],
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One batch ready to append: its event, its prediction rows, the raw inputs to keep."""

    draft: Draft
    batch_id: str
    rows: list[tuple[str, str, int, bytes]]  # values of _COLUMNS
    digests: bytes  # the records' SHA-256 digests in leaf order, 32 bytes each
    inputs: list[tuple[str, bytes, str | None]]


def _record_texts(
    deployment: str,
    version: str,
    pids: Sequence[str],
    stamps: Sequence[str],
    hmacs: Sequence[str],
    outputs: Sequence[str],
) -> list[str]:
    """Canonical records of one deployment and version, with outputs already canonical.

    The keys are fixed and in RFC 8785 order (§3.2.3), so only the values need encoding;
    `encode_string` is the C escaper the canonical encoder uses.
    """
    q = encode_string
    head = f'{{"deployment":{q(deployment)},"input_hmac":'
    tail = f',"version":{q(version)}}}'
    return [
        f'{head}{q(h)},"output":{o},"prediction_id":{q(p)},"timestamp":{q(s)}{tail}'
        for p, s, h, o in zip(pids, stamps, hmacs, outputs, strict=True)
    ]


def _tree(blobs: list[bytes]) -> tuple[list[bytes], bytes]:
    """The records' SHA-256 digests (the tree's leaf data) and the batch's RFC 6962 root."""
    digests = [_sha256(b).digest() for b in blobs]
    # Leaf hashes SHA-256(0x00 || digest) (RFC 6962 §2.1) written out, as merkle.leaf_hash
    # would add a Python call per record.
    return digests, merkle.root_hash([_sha256(b"\x00" + d).digest() for d in digests])


def _utf8(texts: list[str], pids: Sequence[str]) -> list[bytes]:
    try:
        return [text.encode("utf-8") for text in texts]
    except UnicodeEncodeError:
        for text, pid in zip(texts, pids, strict=True):
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise InvalidInputError(f"prediction {pid!r} holds a lone surrogate") from exc
        raise


# -- parsing the records given ------------------------------------------------------------


def _items(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    items: list[Any] = list(records)
    if not items:
        raise InvalidInputError("no prediction records given")
    if len(items) > MAX_BATCH:
        raise InvalidInputError(
            f"{len(items)} records in one call; send at most {MAX_BATCH} at a time"
        )
    if set(map(type, items)) == {dict}:
        return items
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInputError(
                f"prediction record {position} is not an object: {item!r}",
                hint="each record needs prediction_id, deployment and output",
            )
    return [dict(item) for item in items]


def _deployments(items: list[dict[str, Any]]) -> list[str]:
    names: list[Any] = [item.get("deployment") for item in items]
    if not all(names):
        position = next(i for i, name in enumerate(names) if not name)
        raise InvalidInputError(
            f"prediction record {position} has no deployment",
            hint="each record needs prediction_id, deployment and output",
        )
    return names if set(map(type, names)) == {str} else [str(name) for name in names]


def _parse(
    items: list[dict[str, Any]],
    deployments: list[str],
    served: Mapping[str, str],
    secret: bytes,
    clock: Any,
) -> list[_Group]:
    """Validate every record and group them by deployment and version, as columns."""
    pids = check_ids([item.get("prediction_id") for item in items], "prediction id")
    try:
        values = [item["output"] for item in items]
    except KeyError:
        position = next(i for i, item in enumerate(items) if "output" not in item)
        raise InvalidInputError(f"prediction {pids[position]!r} has no output") from None
    hmacs, inputs = _input_hashes(items, pids, secret)
    stamps = _timestamps(items, clock)
    versions = _versions(items, deployments, served)
    if len(set(pids)) != len(pids):
        raise InvalidInputError(
            f"prediction id {_first_repeat(pids)!r} appears twice in the records"
        )
    outputs = [canonicalize(value).decode("utf-8") for value in values]
    given = [
        None if data is None else (data, _subject(item))
        for data, item in zip(inputs, items, strict=True)
    ]
    whole = _Group(deployments[0], versions[0], pids, stamps, hmacs, outputs, given)
    return _grouped(whole, deployments, versions)


def _grouped(whole: _Group, deployments: list[str], versions: list[str]) -> list[_Group]:
    """One group per deployment and version, each keeping its records' order."""
    if len(set(deployments)) == 1 and len(set(versions)) == 1:
        return [whole]
    keys = list(zip(deployments, versions, strict=True))
    positions: dict[tuple[str, str], list[int]] = {key: [] for key in sorted(set(keys))}
    for position, key in enumerate(keys):
        positions[key].append(position)
    return [
        whole.part(deployment, version, where) for (deployment, version), where in positions.items()
    ]


def _input_hashes(
    items: list[dict[str, Any]], pids: list[str], secret: bytes
) -> tuple[list[str], list[bytes | None]]:
    """Each record's ``input_hmac``, computed from ``input`` where one is given; and the
    canonical bytes of each input given."""
    if not any(["input" in item for item in items]):
        try:
            given = [item["input_hmac"] for item in items]
        except KeyError:
            pass  # refused below, naming the record
        else:
            strings = given if set(map(type, given)) == {str} else list(map(str, given))
            return strings, [None] * len(items)
    digest = keyed_hasher(secret)
    hmacs: list[str] = []
    inputs: list[bytes | None] = []
    for pid, item in zip(pids, items, strict=True):
        if "input" in item:
            data = canonicalize(item["input"])
            hmacs.append(digest(data))
            inputs.append(data)
        elif "input_hmac" in item:
            hmacs.append(str(item["input_hmac"]))
            inputs.append(None)
        else:
            raise InvalidInputError(f"prediction {pid!r} has neither input nor input_hmac")
    return hmacs, inputs


def _timestamps(items: list[dict[str, Any]], clock: Any) -> list[str]:
    """Each record's timestamp in the registry's form; the clock's reading where none."""
    given = [item.get("timestamp") for item in items]
    now = clock() if not all(given) else ""
    if set(map(type, given)) <= {str, type(None)}:  # each distinct one checked once
        forms = {stamp: _timestamp(stamp, now) for stamp in set(given)}
        return [forms[stamp] for stamp in given]
    return [_timestamp(stamp, now) for stamp in given]


def _timestamp(stamp: Any, now: str) -> str:
    if not stamp:
        return now
    if not isinstance(stamp, str):
        raise InvalidInputError(
            f"timestamp {stamp!r} is not RFC 3339 text", hint="write it like 2024-06-01T09:30:00Z"
        )
    if CANONICAL_TIMESTAMP.match(stamp) and _real_time(stamp):
        return stamp  # already in the registry's form: skip the parse/format round trip
    return format_timestamp(parse_timestamp(stamp))


def _real_time(stamp: str) -> bool:
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return True


def _versions(
    items: list[dict[str, Any]], deployments: list[str], served: Mapping[str, str]
) -> list[str]:
    """The version each record names, or else the one its deployment serves."""
    named = [item.get("version") for item in items]
    if not any(named):
        return [served[name] for name in deployments]
    forms = {text: normalize_version(text) for text in {str(v) for v in named if v}}
    return [
        forms[str(v)] if v else served[name] for v, name in zip(named, deployments, strict=True)
    ]


def _first_repeat(values: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _subject(item: Mapping[str, Any]) -> str | None:
    subject = item.get("subject")
    return None if subject is None else str(subject)


# -- storing ---------------------------------------------------------------------------


def _insert_batch(conn: Any, batch_id: str, rows: Sequence[Sequence[Any]], digests: bytes) -> None:
    """A batch's prediction rows, and its leaf digests beside the batch (proofs read them
    in one row instead of one row per prediction)."""
    try:
        raw.insert_rows(conn, t.predictions.name, _COLUMNS, rows, types=_TYPES)
    except (sa.exc.IntegrityError, *DRIVER_INTEGRITY_ERRORS) as exc:
        raise _DuplicatePredictionError("a prediction id in this batch is already logged") from exc
    raw.execute(conn, _SET_DIGESTS, (digests, batch_id))


def _split_digests(batch: Mapping[str, Any]) -> list[bytes]:
    blob = batch["digests"]
    size = merkle.HASH_SIZE
    if blob is None or len(blob) != size * int(batch["count"]):
        raise VerificationError(
            f"batch {batch['batch_id']} holds {0 if blob is None else len(blob) // size} "
            f"record digests, expected {batch['count']}",
            hint="run `mltrail rebuild` to re-derive the batch from its stored records",
        )
    return [bytes(blob[i : i + size]) for i in range(0, len(blob), size)]


class _DuplicatePredictionError(ConflictError):
    """Raised inside the append; re-raised outside it with the ids named."""
