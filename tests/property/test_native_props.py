"""The C accelerator (`mltrail._native`) against its pure-Python twins, byte for byte.

Skipped where the extension is not built, except under MLTRAIL_REQUIRE_NATIVE=1 (CI sets
it), so a broken build cannot pass unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import types
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.canonical import canonicalize_python
from mltrail.errors import FormatError
from mltrail.events import Action, Actor, Draft, Event, Ref, SubjectType
from mltrail.ledger import log as log_module
from mltrail.ledger import merkle
from mltrail.ledger.chunk import columns_match
from tests.property.strategies import HEX, json_values

try:
    from mltrail import _native
except ImportError:
    if os.environ.get("MLTRAIL_REQUIRE_NATIVE"):
        raise
    pytest.skip("mltrail._native is not built", allow_module_level=True)

TEXT = st.text(max_size=12)
ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=12)
TIMESTAMP = "2025-05-05T14:03:00.123456Z"


def python_or_error(value: Any) -> bytes | type[FormatError]:
    try:
        return canonicalize_python(value)
    except FormatError:
        return FormatError


@given(json_values(TEXT, float_range=1e300, size=4, leaves=20))
def test_canonical_equals_python_or_defers(value: Any) -> None:
    fast = _native.canonical(value)
    if fast is not None:
        assert fast == canonicalize_python(value)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(ASCII, children, max_size=4)
    )


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | ASCII,
    _containers,
    max_leaves=20,
)


@given(PLAIN)
def test_canonical_takes_plain_values_itself(value: Any) -> None:
    # Without floats, astral keys or surrogates, nothing is deferred to Python.
    fast = _native.canonical(value)
    assert fast is not None
    assert fast == canonicalize_python(value)


class Shade(StrEnum):
    RED = "réd"
    QUOTE = 'say "hi"\n'
    WIDE = "😀"  # astral: fine as a value, deferred as a key


@given(st.dictionaries(st.sampled_from(Shade) | ASCII, st.sampled_from(Shade) | PLAIN, max_size=5))
def test_str_subclasses_are_encoded_by_their_text(value: dict[str, Any]) -> None:
    fast = _native.canonical(value)
    if Shade.WIDE in value:  # as a key
        assert fast is None
    else:
        assert fast is not None
        assert fast == canonicalize_python(value)


@pytest.mark.parametrize(
    "value",
    [
        1.0,  # integral float: "1" in RFC 8785, "1.0" in repr
        1e16,
        1e-5,
        float("nan"),
        2**53,
        -(2**53),
        {"\U0001f600": 1},  # an astral key sorts differently in UTF-16
        {1: "a"},  # a non-string key
        "\ud800",  # a lone surrogate
        {"a": "\udfff"},
        object(),  # not JSON
        types.MappingProxyType({"a": 1}),  # a mapping, but not a dict
    ],
)
def test_canonical_defers_everything_it_does_not_encode_exactly(value: Any) -> None:
    assert _native.canonical(value) is None


def test_canonical_defers_past_the_depth_and_size_limits() -> None:
    deep: list[Any] = []
    for _ in range(600):
        deep = [deep]
    assert _native.canonical(deep) is None
    assert python_or_error(list(range(1_000_001))) is FormatError
    assert _native.canonical(list(range(1_000_001))) is None
    assert _native.canonical(list(range(999_999))) == canonicalize_python(list(range(999_999)))


def test_canonical_escapes_controls_quotes_and_backslashes_like_rfc8785() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028é😀'
    assert _native.canonical(text) == canonicalize_python(text)
    assert _native.canonical({"é": 1, "e": 2, "z": 3, "ée": 4}) == (
        canonicalize_python({"é": 1, "e": 2, "z": 3, "ée": 4})
    )


REFS = st.builds(
    Ref, TEXT.filter(bool), TEXT.filter(bool), st.none() | TEXT.filter(bool), st.none() | HEX
)
DRAFTS = st.builds(
    Draft,
    TEXT.filter(bool) | st.sampled_from(Action),  # the registry's actions are a StrEnum
    st.builds(Actor, st.sampled_from(["user", "service", "registry"]), TEXT.filter(bool)),
    st.builds(
        Ref,
        TEXT.filter(bool) | st.sampled_from(SubjectType),
        TEXT.filter(bool),
        st.none(),
        st.none() | HEX,
    ),
    related=st.lists(REFS, max_size=3).map(tuple) | st.lists(REFS, max_size=3),
    metadata=st.dictionaries(ASCII, PLAIN, max_size=4)
    | st.dictionaries(TEXT, json_values(TEXT, float_range=1e20, size=3, leaves=8)),
    artifact_sha256=st.none() | HEX,
)


@given(
    drafts=st.lists(DRAFTS, min_size=1, max_size=8),
    seq=st.integers(0, 2**40),
    unix_ms=st.integers(0, 2**48 - 1),
    seed=st.binary(min_size=32, max_size=32),
)
def test_seal_batch_equals_the_python_sealer(
    drafts: list[Draft], seq: int, unix_ms: int, seed: bytes
) -> None:
    ids = log_module._IdSource(unix_ms, hashlib.shake_256(seed).digest(10 * len(drafts)))
    frontier = [hashlib.sha256(seed + bytes([i])).digest() for i in range(seq.bit_count())]
    base = merkle.CompactRange(seq, frontier)
    sealed = log_module._seal_native(drafts, base, TIMESTAMP, ids)
    if sealed is None:  # some metadata needs the Python encoder; the log then seals in Python
        assert any(_native.canonical(dict(d.metadata)) is None for d in drafts)
        return

    expected = log_module._seal_python(drafts, base, TIMESTAMP, ids)
    assert sealed.rows == expected.rows
    assert (sealed.leaves, sealed.nodes) == (expected.leaves, expected.nodes)
    assert sealed.tree.hashes() == expected.tree.hashes()
    assert sealed.events == expected.events  # built from the drafts when asked for
    assert [sealed.proof(seq + i) for i in range(len(drafts))] == [
        expected.proof(seq + i) for i in range(len(drafts))
    ]


@pytest.mark.parametrize(
    "metadata",
    [{"x": 1.0}, {"\U0001f600": 1}, {"x": "\ud800"}, types.MappingProxyType({"a": 1})],
)
def test_seal_batch_defers_a_batch_with_any_draft_it_cannot_encode(metadata: Any) -> None:
    plain = Draft("note", Actor("user", "ann"), Ref("model", "m"))
    odd = Draft("note", Actor("user", "ann"), Ref("model", "m"), metadata=metadata)
    assert _native.seal_batch([plain, odd], 0, TIMESTAMP, 0, bytes(20), []) is None


def test_seal_batch_refuses_a_frontier_that_does_not_fit_the_size() -> None:
    plain = Draft("note", Actor("user", "ann"), Ref("model", "m"))
    with pytest.raises(ValueError, match="frontier"):
        _native.seal_batch([plain], 3, TIMESTAMP, 0, bytes(10), [bytes(32)])
    with pytest.raises(ValueError, match="random bytes"):
        _native.seal_batch([plain, plain], 0, TIMESTAMP, 0, bytes(10), [])


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_subtree_levels_equals_python(leaves: list[bytes]) -> None:
    assert _native.subtree_levels(leaves) == merkle.subtree_levels_python(leaves)


def test_subtree_levels_defers_what_are_not_leaf_hashes() -> None:
    assert _native.subtree_levels([bytes(32), b"short"]) is None
    assert merkle.subtree_levels([bytes(32), b"short"]) == merkle.subtree_levels_python(
        [bytes(32), b"short"]
    )


# Text that collides with the body's own punctuation (see test_chunk_props).
TRICKY = st.sampled_from(['"', "\\", '","type":"', '"},"timestamp":"', ',"seq":1', "{", "\u2028"])
FIELD = st.lists(TEXT | TRICKY, min_size=1, max_size=3).map("".join).filter(bool)
STORED = st.builds(
    Event,
    event_id=FIELD,
    seq=st.integers(0, 2**40),
    action=FIELD,
    actor=st.builds(Actor, st.just("user"), FIELD),
    timestamp=st.just(TIMESTAMP),
    subject=st.builds(Ref, FIELD, FIELD, st.none(), st.none() | HEX),
    related=st.lists(st.builds(Ref, FIELD, FIELD), max_size=2).map(tuple),
    metadata=st.dictionaries(FIELD, FIELD | st.integers(0, 9), max_size=3),
)
TAMPER = st.sampled_from(["none", "digest", "body", "column", "seq"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(STORED, TAMPER), min_size=1, max_size=6), st.data())
def test_check_rows_flags_what_the_python_checks_find(
    stored: list[tuple[Event, str]], data: st.DataObject
) -> None:
    rows: list[tuple[Any, ...]] = []
    for event, tamper in stored:
        body = event.canonical_bytes()
        row = [event.seq, hashlib.sha256(body).digest(), body, event.action, event.actor.id,
               event.event_id, event.subject.type, event.subject.id, event.timestamp]  # fmt: skip
        if tamper == "digest":
            row[1] = bytes(32)
        elif tamper == "body":
            row[2] = body.replace(b'"seq":', b'"seq": ', 1)
        elif tamper == "column":
            row[data.draw(st.integers(3, 8))] = data.draw(FIELD)
        elif tamper == "seq":
            row[0] = data.draw(st.integers(0, 2**40) | FIELD)
        rows.append(tuple(row))

    checked = _native.check_rows(rows)
    assert checked is not None
    leaves, bad_digests, suspects = checked
    for i, (row, (_, tamper)) in enumerate(zip(rows, stored, strict=True)):
        digest = hashlib.sha256(row[2]).digest()
        assert leaves[i] == merkle.leaf_hash(digest)
        assert (i in bad_digests) == (digest != row[1])
        if i not in suspects:  # the byte check's "match" must be right
            assert columns_match(row[2], row[0], *row[3:])
        if tamper in ("none", "digest"):  # and it must take every untouched row itself
            assert i not in suspects
