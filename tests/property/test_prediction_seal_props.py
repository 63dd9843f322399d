"""Sealing a batch of prediction records: C twin and Python path against the definition.

The definition: each record is `canonicalize` of its dict, its digest is SHA-256 of those
bytes, and the batch root is the RFC 6962 root (`merkle.root_hash`) over the digests' leaf
hashes. The Python path must meet it always; `seal_records`, which takes the C twin
(`mltrail.catalog._records`) where it is built, must meet it too, and must refuse exactly
what the Python path refuses, with the same message.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values

from mltrail.canonical import canonicalize, loads
from mltrail.catalog.predictions import (
    RecordColumns,
    SealedBatch,
    seal_records,
    seal_records_python,
)
from mltrail.errors import InvalidInputError
from mltrail.ledger import merkle

# Any text, control characters, quotes and backslashes included; lone surrogates only in
# ANY_TEXT, which the Python path refuses naming the record.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
ANY_TEXT = st.text(max_size=12)
OUTPUT = json_values(TEXT, float_range=1e15, size=3, leaves=8)
RECORDS = st.lists(st.tuples(TEXT, TEXT, TEXT, OUTPUT), min_size=1, max_size=40)


def _columns(dep: str, version: str, records: list[tuple[str, str, str, Any]]) -> RecordColumns:
    pids = [f"P{i}-{pid}" for i, (pid, _, _, _) in enumerate(records)]  # unique, as checked
    outputs = [canonicalize(output) for _, _, _, output in records]
    stamps, hmacs = [r[1] for r in records], [r[2] for r in records]
    return RecordColumns(dep, version, pids, stamps, hmacs, outputs, [None] * len(records))


def _defined(c: RecordColumns) -> SealedBatch:
    """The batch as the record format and RFC 6962 define it, one record at a time; its
    file is the records joined by newlines."""
    blobs = [
        canonicalize(
            {
                "prediction_id": pid,
                "deployment": c.deployment,
                "version": c.version,
                "timestamp": stamp,
                "input_hmac": hmac,
                "output": loads(output),
            }
        )
        for pid, stamp, hmac, output in zip(c.pids, c.stamps, c.hmacs, c.outputs, strict=True)
    ]
    digests = [hashlib.sha256(blob).digest() for blob in blobs]
    root = merkle.root_hash([merkle.leaf_hash(digest) for digest in digests])
    return SealedBatch(b"\n".join(blobs), [len(b) for b in blobs], b"".join(digests), root)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT, RECORDS)
def test_python_path_seals_as_defined(dep: str, version: str, records: Any) -> None:
    columns = _columns(dep, version, records)
    assert seal_records_python(columns) == _defined(columns)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT, RECORDS)
def test_seal_records_seals_as_defined(dep: str, version: str, records: Any) -> None:
    columns = _columns(dep, version, records)
    assert seal_records(columns) == _defined(columns)


def _outcome(seal: Any, columns: RecordColumns) -> object:
    try:
        return seal(columns)
    except InvalidInputError as exc:
        return exc.message


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, ANY_TEXT, st.lists(st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT), min_size=1))
def test_both_paths_refuse_lone_surrogates_alike(
    dep: str, version: str, records: list[tuple[str, str, str]]
) -> None:
    columns = _columns(dep, version, [(*record, None) for record in records])
    assert _outcome(seal_records, columns) == _outcome(seal_records_python, columns)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 1000, 1025])
def test_roots_for_every_tree_shape(size: int) -> None:
    """Odd sizes lift a lone node a level (RFC 6962 §2.1's split at a power of two)."""
    records = [(str(i), "2024-06-01T09:30:00.000000Z", "0" * 64, i) for i in range(size)]
    columns = _columns("D45", "model:churn:v2", records)
    assert seal_records(columns) == _defined(columns)


def test_c_twin_leaves_what_it_cannot_take_to_python() -> None:
    native = pytest.importorskip("mltrail.catalog._records")
    head, tail = b'{"deployment":"D","input_hmac":', b',"version":"v"}'
    plain = (["P1"], ["T"], ["H"], [b"1"])
    assert native.seal(head, tail, *plain) is not None

    class Text(str):
        pass

    assert native.seal(head, tail, [Text("P1")], ["T"], ["H"], [b"1"]) is None
    assert native.seal(head, tail, ["P\ud800"], ["T"], ["H"], [b"1"]) is None
    assert native.seal(head, tail, ["P1", "P2"], ["T"], ["H"], [b"1"]) is None
    assert native.seal(head, tail, ["P1"], ["T"], ["H"], [bytearray(b"1")]) is None
    assert native.seal(head, tail, [], [], [], []) is None
