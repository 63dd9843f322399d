"""One aligned chunk of the log, checked on its own: the unit `audit` splits a log into.

A chunk is the leaves ``[start, end)`` of a log with ``start`` a multiple of ``2**level``
and ``end <= start + 2**level``: the left part of one complete subtree. Every stored subtree
hash up to that level lies wholly inside one chunk, so chunks can be checked in any order,
by any process, with nothing but a database connection. `check_chunk` re-hashes each event
body, checks the derived query columns against the bytes, builds the chunk's complete
subtrees, compares every stored one, and returns the hash of each prefix ``[start, size)``
the caller asks for; `audit` folds those with the subtrees before the chunk into the roots
of the signed checkpoints.

`columns_match` is the derived-column check, exact without parsing the event:

>>> from mltrail.events import Actor, Draft, Ref
>>> event = Draft("register", Actor("user", "alice"), Ref("model", "churn")).seal(
...     event_id="0190f000-0000-7000-8000-000000000000", seq=7,
...     timestamp="2024-05-15T09:00:00.000000Z")
>>> body = event.canonical_bytes()
>>> columns_match(body, 7, "register", "alice", event.event_id, "model", "churn", event.timestamp)
True
>>> columns_match(body, 7, "register", "alice", event.event_id, "model", "churn2", event.timestamp)
False
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from mltrail.canonical import encode_string, loads
from mltrail.errors import FormatError, InvalidInputError
from mltrail.ledger import merkle
from mltrail.storage import raw
from mltrail.storage.schema import LEDGER_NODES_MIN_LEVEL

try:
    from mltrail import _native
except ImportError:  # built without the optional C accelerator
    _native = None  # type: ignore[assignment]

__all__ = ["Chunk", "ChunkResult", "Problem", "check_chunk", "columns_match", "plan_chunks"]

CHUNK_LEVEL = 15
"""Chunks hold ``2**15`` leaves: a few dozen per million events, so two workers finish
within a small fraction of a second of each other, and one chunk's rows stay a few MiB."""

_MISSING = merkle.leaf_hash(b"missing")  # stands in for a deleted event in the rebuilt tree
_EVENTS = (
    "SELECT seq, event_sha256, body, action, actor_id, event_id, subject_type, subject_id, ts "
    "FROM ledger_events WHERE seq >= ? AND seq < ? ORDER BY seq"
)
_NODES = "FROM ledger_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold, at a leaf index when it has one."""

    kind: str  # digest mismatch, missing leaf, column mismatch, root mismatch, ...
    detail: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"index {self.index}: " if self.index is not None else ""
        return f"{where}{self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Leaves ``[start, end)`` and the tree sizes in ``(start, end]`` whose root is wanted."""

    start: int
    end: int
    level: int = CHUNK_LEVEL
    sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.start % (1 << self.level) or not self.start < self.end <= self.start + (
            1 << self.level
        ):
            raise InvalidInputError(
                f"leaves [{self.start}, {self.end}) are not an aligned chunk of level {self.level}"
            )
        if any(not self.start < size <= self.end for size in self.sizes):
            raise InvalidInputError(f"a wanted size lies outside [{self.start}, {self.end}]")


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What `check_chunk` found in one chunk."""

    chunk: Chunk
    problems: list[Problem]  # missing leaves, digest and column mismatches, by index
    bad_nodes: list[merkle.NodeId]  # stored subtrees that differ from the recomputed ones
    nodes_checked: int
    prefixes: dict[int, bytes]  # size -> MTH of leaves [start, size), for sizes and end


def plan_chunks(size: int, sizes: Iterable[int], level: int = CHUNK_LEVEL) -> list[Chunk]:
    """Split a log of ``size`` leaves into aligned chunks of ``2**level``.

    Each chunk is handed the wanted tree ``sizes`` that end inside it (others are dropped).

    Raises:
        InvalidInputError: ``level`` is negative.
    """
    if level < 0:
        raise InvalidInputError(f"chunk level {level} is negative; chunks hold 2**level leaves")
    wanted = sorted({s for s in sizes if 0 < s <= size})
    chunks = []
    for start in range(0, size, 1 << level):
        end = min(start + (1 << level), size)
        inside = wanted[bisect.bisect_right(wanted, start) : bisect.bisect_right(wanted, end)]
        chunks.append(Chunk(start, end, level, tuple(inside)))
    return chunks


def check_chunk(conn: Connection, chunk: Chunk) -> ChunkResult:
    """Re-hash, column-check and rebuild one chunk, comparing its stored subtrees.

    Reads ``ledger_events`` rows with ``seq`` in the chunk and ``ledger_nodes`` rows of levels
    1 to ``chunk.level`` inside it (below `LEDGER_NODES_MIN_LEVEL` there must be none);
    writes nothing.
    """
    problems: list[Problem] = []
    leaves = _leaves(conn, chunk, problems)
    levels = merkle.subtree_levels(leaves)
    bad, checked = _check_nodes(conn, chunk, levels)
    prefixes = {}
    for size in (*chunk.sizes, chunk.end):
        nodes = merkle.range_nodes(0, size - chunk.start)  # relative to the aligned start
        prefixes[size] = merkle.subtree_range_hash([levels[lv][i] for lv, i in nodes])
    return ChunkResult(chunk, problems, bad, checked, prefixes)


def _leaves(conn: Connection, chunk: Chunk, problems: list[Problem]) -> list[bytes]:
    """The chunk's leaf hashes, recomputed from the stored bytes; records what does not hold."""
    rows = _event_rows(conn, chunk)
    if _native is not None and len(rows) == chunk.end - chunk.start:
        # seq is the key and rows come in seq order, so as many rows as the chunk's width
        # means no event is missing: the C loop hashes and checks them all, and the rows it
        # flags get the same look as below.
        checked = _native.check_rows(rows)
        if checked is not None:
            hashes, bad_digests, suspects = checked
            for at in sorted({*bad_digests, *suspects}):
                _row_problems(rows[at], problems)
            return hashes
    leaves: list[bytes] = []
    sha256, start, expected = hashlib.sha256, chunk.start, chunk.start
    for row in rows:
        seq = row[0]
        if seq != expected:
            _fill_gap(leaves, start, seq, problems)
        expected = seq + 1
        digest = _row_problems(row, problems)
        leaves.append(sha256(b"\x00" + digest).digest())  # RFC 6962 §2.1 leaf of the digest
    _fill_gap(leaves, start, chunk.end, problems)
    return leaves


def _row_problems(row: tuple[Any, ...], problems: list[Problem]) -> bytes:
    """Record a row's digest and column mismatches, in that order; returns its digest."""
    seq, stored, body, action, actor, event_id, stype, sid, ts = row
    digest = hashlib.sha256(body).digest()
    if digest != stored:
        problems.append(
            Problem(
                "digest mismatch",
                f"stored {bytes(stored).hex()[:16]}…, bytes hash to {digest.hex()[:16]}…",
                seq,
            )
        )
    if not columns_match(body, seq, action, actor, event_id, stype, sid, ts):
        problems.append(
            Problem("column mismatch", "a query column disagrees with the event's bytes", seq)
        )
    return digest


def _event_rows(conn: Connection, chunk: Chunk) -> list[tuple[Any, ...]]:
    """The chunk's event rows, straight from the driver's cursor (no copy per row)."""
    postgres = conn.dialect.name == "postgresql"
    # psycopg's binary format: bytea arrives as its bytes rather than as hex text to decode,
    # which halves the client's time per row.
    cursor = conn.connection.cursor(binary=True) if postgres else conn.connection.cursor()
    try:
        cursor.execute(
            _EVENTS.replace("?", "%s") if postgres else _EVENTS, (chunk.start, chunk.end)
        )
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _fill_gap(leaves: list[bytes], start: int, until: int, problems: list[Problem]) -> None:
    while start + len(leaves) < until:  # the event at this index was removed
        problems.append(Problem("missing leaf", "no event is stored here", start + len(leaves)))
        leaves.append(_MISSING)


def _check_nodes(
    conn: Connection, chunk: Chunk, levels: list[list[bytes]]
) -> tuple[list[merkle.NodeId], int]:
    """Compare the stored subtrees inside the chunk with the recomputed ``levels``."""
    bad: list[merkle.NodeId] = []
    checked = 0
    for level in range(1, chunk.level + 1):
        first, last = chunk.start >> level, chunk.end >> level  # the complete ones only
        if first == last:
            break
        if level < LEDGER_NODES_MIN_LEVEL:  # none is stored: any row here is not ours
            stray = raw.execute(conn, "SELECT idx " + _NODES, (level, first, last))
            checked += len(stray)
            bad.extend((level, int(idx)) for (idx,) in stray)
            continue
        hashes = [
            row[0] for row in raw.execute(conn, "SELECT hash " + _NODES, (level, first, last))
        ]
        checked += len(hashes)
        computed = levels[level]
        # (level, idx) is the key, so as many rows as indexes in the range means every node
        # is there, in idx order: one C-level comparison of the lists checks them all.
        if hashes == computed:
            continue
        stored = raw.execute(conn, "SELECT idx, hash " + _NODES, (level, first, last))
        bad.extend((level, idx) for idx, digest in stored if digest != computed[idx - first])
    return bad, checked


# -- derived columns -----------------------------------------------------------------------

_TYPE_END = b'"},"event_id":'
_SUBJECT_DIGEST = re.compile(rb'"digest":"[0-9a-f]{64}",')
_DIGEST_FIELD = len(b'"digest":"') + 64 + len(b'",')


def columns_match(
    body: bytes,
    seq: int,
    action: str,
    actor_id: str,
    event_id: str,
    subject_type: str,
    subject_id: str,
    ts: str,
) -> bool:
    """Whether the query columns of an event row say what its canonical bytes say.

    Fast path, without parsing: the body is RFC 8785, so its keys are sorted (action, actor
    {id, type}, event_id, integrity, metadata, related, seq, subject {digest?, id, type},
    timestamp) and each string is `encode_string` of its value. The expected bytes are built
    from the columns and compared at fixed places: the head from byte 0, ``event_id`` right
    after the actor's type, the tail up to the last byte. Matches there are exact, because
    a canonical string never holds an unescaped quote: ``,"`` or ``:"`` cannot occur inside
    one, so a string token built from a column can only line up with the token of the same
    field, never with text inside another value (a metadata value quoting ``"seq":5`` is
    inside quotes, escaped). When the fast path does not match (a changed column, or a body
    of another shape), the body is parsed and the fields compared, so only a real
    disagreement is reported.
    """
    q = encode_string
    try:  # f-strings: one C-level join per fragment (doubled braces are literal braces)
        head = f'{{"action":{q(action)},"actor":{{"id":{q(actor_id)},"type":"'.encode()
        mid = f'"}},"event_id":{q(event_id)},"integrity":{{'.encode()
        tail = (
            f',"seq":{seq:d},"subject":{{"id":{q(subject_id)},"type":{q(subject_type)}}},'
            f'"timestamp":{q(ts)}}}'
        ).encode()
    except (TypeError, ValueError, UnicodeEncodeError):  # a column that is not text
        return _parsed_match(body, (seq, action, actor_id, event_id, subject_type, subject_id, ts))
    if (
        body.startswith(head)
        and body.startswith(mid, body.find(_TYPE_END, len(head)))  # find: -1 never matches
        and (body.endswith(tail) or _digest_tail_matches(body, tail))
    ):
        return True
    return _parsed_match(body, (seq, action, actor_id, event_id, subject_type, subject_id, ts))


def _digest_tail_matches(body: bytes, tail: bytes) -> bool:
    """The tail of a subject with content: its 64-hex digest comes between seq and id."""
    cut = tail.index(b'{"id":') + 1  # the subject's: the seq before it is a number
    lead, rest = tail[:cut], tail[cut:]
    end = len(body) - len(rest)
    at = end - _DIGEST_FIELD
    return (
        body.endswith(rest)
        and at > 0
        and _SUBJECT_DIGEST.fullmatch(body, at, end) is not None
        and body.endswith(lead, 0, at)
    )


def _parsed_match(body: bytes, columns: tuple[Any, ...]) -> bool:
    """The slow, obvious check: parse the body and compare each field."""
    try:
        data = loads(body)
    except FormatError:
        return False
    if not isinstance(data, dict):
        return False
    actor, subject = data.get("actor"), data.get("subject")
    if not isinstance(actor, dict) or not isinstance(subject, dict):
        return False
    seq = data.get("seq")
    fields = (
        data.get("action"),
        actor.get("id"),
        data.get("event_id"),
        subject.get("type"),
        subject.get("id"),
        data.get("timestamp"),
    )
    # type() too: JSON true or 5.0 must not pass for the integer column 1 or 5.
    return type(seq) is int and type(columns[0]) is int and (seq, *fields) == columns
