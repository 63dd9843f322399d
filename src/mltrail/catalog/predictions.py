"""Prediction records: their canonical form, their batches' Merkle trees, and checking
the records a caller gives before any of them is logged.

A record is ``{prediction_id, deployment, version, timestamp, input_hmac, output}``; raw
inputs never enter it, only their keyed hash (HMAC-SHA-256 with the registry secret).
Each batch is a Merkle tree over the records' SHA-256 digests (RFC 6962, the same hashing
as the log), whose root goes into the batch's `log_predictions` event.

Ingest handles up to `MAX_BATCH` records a call, so records are checked as columns (one
list per field, in C-level passes) and each record's canonical bytes come from one
f-string; `PredictionRecord` is the same record as an object, for reading one back. Where
the optional C twins (`_records.c`) are built, they take the common, all-valid batch in
one pass per step (`parse_records`, `seal_records`) and hand anything else
back to the Python path, which raises the errors.

>>> record = PredictionRecord("P1", "D45", "model:churn:v2", "2024-06-01T09:30:00.000000Z",
...                           "hmac-sha256:00", {"score": 0.5})
>>> PredictionRecord.from_bytes(record.to_bytes()) == record
True
>>> digests, root = batch_tree([record.to_bytes()])
>>> root == record_leaf(record.to_bytes())
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mltrail.canonical import canonicalize, encode_string, loads
from mltrail.catalog.ids import check_ids, normalize_version
from mltrail.errors import InvalidInputError, VerificationError
from mltrail.events import CANONICAL_TIMESTAMP, format_timestamp, parse_timestamp
from mltrail.ledger import merkle
from mltrail.privacy.redaction import keyed_hasher

try:  # the optional C twins (built by setup.py where it can be), and the C encoder of
    # canonical JSON they call for outputs (a separate extension: the two are not linked)
    from mltrail._native import canonical as _canonical_native
    from mltrail.catalog._records import columns as _columns_native
    from mltrail.catalog._records import seal as _seal_native
except ImportError:  # built without a compiler or OpenSSL's headers: Python alone

    def _canonical_native(value: object) -> bytes | None:
        return None

    def _columns_native(
        items: list[dict[str, Any]], canonical: Callable[[object], bytes | None], clock: Any
    ) -> tuple[list[str], list[str], list[str], list[bytes]] | None:
        return None

    def _seal_native(
        head: bytes,
        tail: bytes,
        pids: list[str],
        stamps: list[str],
        hmacs: list[str],
        outputs: list[bytes],
    ) -> tuple[bytes, list[int], bytes, bytes] | None:
        return None


__all__ = [
    "MAX_BATCH",
    "PredictionRecord",
    "RecordColumns",
    "SealedBatch",
    "batch_tree",
    "deployments_named",
    "encode_records",
    "parse_records",
    "parse_records_python",
    "record_leaf",
    "record_texts",
    "records_given",
    "seal_records",
    "seal_records_python",
    "split_digests",
]

MAX_BATCH = 100_000

_sha256 = hashlib.sha256


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
        texts = record_texts(
            self.deployment,
            self.version,
            [self.prediction_id],
            [self.timestamp],
            [self.input_hmac],
            [output],
        )
        return encode_records(texts, [self.prediction_id])[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictionRecord:
        return cls(**loads(data))


def record_leaf(record_bytes: bytes) -> bytes:
    """The Merkle leaf hash of a record: RFC 6962 leaf over the record's SHA-256."""
    return merkle.leaf_hash(_sha256(record_bytes).digest())


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """Validated records of one deployment and version, one list per field."""

    deployment: str
    version: str
    pids: list[str]
    stamps: list[str]
    hmacs: list[str]
    outputs: list[bytes]  # canonical JSON of each output
    inputs: list[tuple[bytes, str | None] | None]  # each raw input given: bytes, subject

    def part(self, deployment: str, version: str, where: list[int]) -> RecordColumns:
        """The records at positions ``where``, as the group of that deployment and version."""
        return RecordColumns(
            deployment,
            version,
            [self.pids[i] for i in where],
            [self.stamps[i] for i in where],
            [self.hmacs[i] for i in where],
            [self.outputs[i] for i in where],
            [self.inputs[i] for i in where],
        )


def record_texts(
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


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch's records as stored and proven."""

    records: bytes  # the batch file: the canonical records in leaf order, joined by b"\n"
    sizes: list[int]  # of each record
    digests: bytes  # each record's SHA-256 (the tree's leaf data), joined, 32 bytes each
    root: bytes  # the batch's RFC 6962 root


def seal_records(columns: RecordColumns) -> SealedBatch:
    """One batch's canonical records joined into its file, their sizes and SHA-256 digests,
    and the batch's RFC 6962 root: `record_texts`, `encode_records` and `batch_tree` in
    one pass.

    The C twin (`_records.c`) does that pass at about a microsecond a record; it hands
    back None for what it does not take (a lone surrogate, a str subclass), and then the
    Python functions do it and raise their errors. A property test holds the two equal.

    Raises:
        InvalidInputError: a record holds a lone surrogate.
    """
    q = encode_string
    try:
        head = f'{{"deployment":{q(columns.deployment)},"input_hmac":'.encode()
        tail = f',"version":{q(columns.version)}}}'.encode()
    except UnicodeEncodeError:
        pass  # the Python path below names the first record
    else:
        sealed = _seal_native(
            head, tail, columns.pids, columns.stamps, columns.hmacs, columns.outputs
        )
        if sealed is not None:
            return SealedBatch(*sealed)
    return seal_records_python(columns)


def seal_records_python(columns: RecordColumns) -> SealedBatch:
    """`seal_records` without the C twin (what runs when it is not built)."""
    texts = record_texts(
        columns.deployment,
        columns.version,
        columns.pids,
        columns.stamps,
        columns.hmacs,
        [output.decode() for output in columns.outputs],
    )
    blobs = encode_records(texts, columns.pids)
    digests, root = batch_tree(blobs)
    return SealedBatch(b"\n".join(blobs), list(map(len, blobs)), b"".join(digests), root)


def batch_tree(blobs: list[bytes]) -> tuple[list[bytes], bytes]:
    """The records' SHA-256 digests (the tree's leaf data) and the batch's RFC 6962 root."""
    digests = [_sha256(b).digest() for b in blobs]
    # Leaf hashes SHA-256(0x00 || digest) (RFC 6962 §2.1) written out, as merkle.leaf_hash
    # would add a Python call per record.
    return digests, merkle.root_hash([_sha256(b"\x00" + d).digest() for d in digests])


def encode_records(texts: list[str], pids: Sequence[str]) -> list[bytes]:
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


# -- checking the records given ------------------------------------------------------------


def records_given(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


def deployments_named(items: list[dict[str, Any]]) -> list[str]:
    names: list[Any] = [item.get("deployment") for item in items]
    if not all(names):
        position = next(i for i, name in enumerate(names) if not name)
        raise InvalidInputError(
            f"prediction record {position} has no deployment",
            hint="each record needs prediction_id, deployment and output",
        )
    return names if set(map(type, names)) == {str} else [str(name) for name in names]


def parse_records(
    items: list[dict[str, Any]],
    deployments: list[str],
    served: Mapping[str, str],
    secret: bytes,
    clock: Any,
) -> list[RecordColumns]:
    """Validate every record and group them by deployment and version, as columns.

    The C twin takes batches whose records are all valid and plain (``input_hmac`` given,
    no ``version``, timestamps absent or already in the registry's form, outputs its
    canonical encoder takes) and hands back None at the first record that is not; then the
    Python path checks the batch and raises its error, naming the record. A property test
    holds the two equal.

    Raises:
        InvalidInputError: a record is malformed (the message names it and the field).
        FormatError: an output or input cannot be canonicalized.
    """
    fast = _columns_native(items, _canonical_native, clock)
    if fast is None:
        return parse_records_python(items, deployments, served, secret, clock)
    pids, stamps, hmacs, outputs = fast
    given: list[tuple[bytes, str | None] | None] = [None] * len(pids)
    if len(set(deployments)) == 1:  # no record names a version: its deployment's it is
        name = deployments[0]
        return [RecordColumns(name, served[name], pids, stamps, hmacs, outputs, given)]
    versions = [served[name] for name in deployments]
    whole = RecordColumns(deployments[0], versions[0], pids, stamps, hmacs, outputs, given)
    return _grouped(whole, deployments, versions)


def parse_records_python(
    items: list[dict[str, Any]],
    deployments: list[str],
    served: Mapping[str, str],
    secret: bytes,
    clock: Any,
) -> list[RecordColumns]:
    """`parse_records` without the C twin (what runs when it is not built)."""
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
    outputs = [canonicalize(value) for value in values]
    given = [
        None if data is None else (data, _subject(item))
        for data, item in zip(inputs, items, strict=True)
    ]
    whole = RecordColumns(deployments[0], versions[0], pids, stamps, hmacs, outputs, given)
    return _grouped(whole, deployments, versions)


def _grouped(
    whole: RecordColumns, deployments: list[str], versions: list[str]
) -> list[RecordColumns]:
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


def split_digests(batch: Mapping[str, Any]) -> list[bytes]:
    blob = batch["digests"]
    size = merkle.HASH_SIZE
    if blob is None or len(blob) != size * int(batch["count"]):
        raise VerificationError(
            f"batch {batch['batch_id']} holds {0 if blob is None else len(blob) // size} "
            f"record digests, expected {batch['count']}",
            hint="run `mltrail rebuild` to re-derive the batch from its stored records",
        )
    return [bytes(blob[i : i + size]) for i in range(0, len(blob), size)]
