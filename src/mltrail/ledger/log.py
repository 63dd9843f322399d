"""The log on SQL: append, read, prove (DESIGN §3).

One append is one database transaction: it takes the append lock, gives each draft its
leaf index, stores the canonical bytes, the new complete Merkle subtrees and a signed
checkpoint, lets the caller update projections on the same connection, and commits.
Proofs read O(log n) stored subtree hashes; nothing here reads the whole log except
`mltrail.ledger.audit`, which exists to do exactly that.

>>> from mltrail.ledger.checkpoint import NoteSigner
>>> from mltrail.storage.database import Database
>>> from mltrail.storage.migrate import upgrade
>>> from mltrail.events import Actor, Draft, Ref
>>> db = Database.connect("sqlite://"); upgrade(db)
>>> log = Log(db, NoteSigner.from_seed("example.org/log", bytes(32)))
>>> [receipt] = log.append([Draft("note", Actor("user", "ann"), Ref("model", "churn"))])
>>> receipt.index, log.size()
(0, 1)
>>> receipt.verify([log.verifier_key])
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.errors import ConflictError, FormatError, InvalidInputError, NotFoundError
from mltrail.events import Draft, Event, now_timestamp, require_timestamp, uuid7
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, open_note, sign_note
from mltrail.storage import raw
from mltrail.storage.database import Database
from mltrail.storage.schema import (
    LEDGER_NODES_MIN_LEVEL,
    event_refs,
    ledger_checkpoints,
    ledger_events,
    ledger_nodes,
)

try:
    from mltrail import _native
except ImportError:  # built without the optional C accelerator
    _native = None  # type: ignore[assignment]

__all__ = [
    "EventFilter",
    "Log",
    "Projector",
    "Receipt",
    "Receipts",
    "collector_paused",
    "parse_receipt",
]

Projector = Callable[[Connection, Sequence[Event]], None]
Clock = Callable[[], str]
PROOF_HEADER = "c2sp.org/tlog-proof@v1"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is built.

    A batch allocates a few small objects per event and keeps them all alive until the
    transaction ends, so the collector would run every few hundred events and re-scan the
    growing batch each time: measured, that doubled the cost of sealing 10,000 events.
    Nothing built here is cyclic garbage; collection resumes (if it was on) afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an append returns for each event: leaf index, checkpoint, inclusion proof.

    A client that keeps receipts can later prove the registry rewrote history: the
    checkpoint is signed, and the proof ties the event digest to its root.
    """

    index: int
    event_sha256: str
    checkpoint: str  # C2SP signed note
    proof: tuple[bytes, ...]

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(bytes.fromhex(self.event_sha256))

    def verify(self, verifier_keys: Iterable[str]) -> None:
        """Check the checkpoint signature and the inclusion proof.

        Raises:
            VerificationError: the signature or the proof does not hold.
        """
        body = Checkpoint.from_text(open_note(self.checkpoint, verifier_keys))
        merkle.verify_inclusion(self.leaf_hash, self.index, body.size, self.proof, body.root_hash)

    def to_text(self) -> str:
        """The C2SP tlog-proof text, with the event digest as `extra` data."""
        lines = [PROOF_HEADER, f"extra {self.event_sha256}", f"index {self.index}"]
        lines += [base64.b64encode(h).decode() for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_receipt(text: str) -> Receipt:
    """Parse :meth:`Receipt.to_text`.

    Raises:
        FormatError: the text is not a tlog-proof with an event digest.
    """
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or len(lines) < 3 or lines[0] != PROOF_HEADER:
        raise FormatError(
            f"receipt does not start with {PROOF_HEADER!r} and a blank-line-ended header"
        )
    if not lines[1].startswith("extra ") or not lines[2].startswith("index "):
        raise FormatError("receipt must carry 'extra <event sha256>' then 'index <n>'")
    try:
        index = int(lines[2].removeprefix("index "))
        proof = tuple(base64.b64decode(line, validate=True) for line in lines[3:])
    except ValueError as exc:
        raise FormatError(f"receipt index or proof hash is malformed: {exc}") from exc
    return Receipt(index, lines[1].removeprefix("extra "), note, proof)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events `Log.events` yields; every field narrows the selection."""

    subject_type: str | None = None
    subject_id: str | None = None
    action: str | None = None
    actor_id: str | None = None
    since: str | None = None  # RFC 3339 UTC, inclusive
    until: str | None = None  # RFC 3339 UTC, exclusive
    start: int = 0
    limit: int | None = None
    descending: bool = False


class Log:
    """The append-only, Merkle-proven event log of one registry."""

    def __init__(
        self,
        db: Database,
        signer: NoteSigner,
        *,
        origin: str | None = None,
        clock: Clock = now_timestamp,
        subjects_in_refs: bool = False,
    ) -> None:
        self.db = db
        self.signer = signer
        self.origin = origin or signer.name
        self.clock = clock
        # The log keeps no subject index (it would cost every append a random insert); a
        # registry indexes every event's subject in `event_refs`, and says so here.
        self.subjects_in_refs = subjects_in_refs
        self._cache: merkle.CompactRange | None = None

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier_key

    # -- writing ---------------------------------------------------------------------------

    def append(self, drafts: Sequence[Draft], *, project: Projector | None = None) -> Receipts:
        """Append ``drafts`` in one transaction; returns one receipt per event.

        ``project`` runs inside the same transaction, after the events are stored, so
        projections and log can never disagree. If it raises, nothing is written.

        Raises:
            InvalidInputError: ``drafts`` is empty.
        """
        if not drafts:
            raise InvalidInputError("nothing to append: the batch of events is empty")
        with self.db.write() as conn:
            batch = self._seal(conn, drafts)
            note = self._store(conn, batch)
            if project is not None:
                project(conn, batch.events)
        self._cache = batch.tree
        return Receipts(batch, note)

    def _seal(self, conn: Connection, drafts: Sequence[Draft]) -> _Batch:
        size = self._size(conn)
        base = self._frontier(conn, size)
        timestamp = require_timestamp(self.clock())  # one transaction, one instant
        ids = _IdSource(time.time_ns() // 1_000_000, os.urandom(10 * len(drafts)))
        with collector_paused():
            return _seal_native(drafts, base, timestamp, ids) or _seal_python(
                drafts, base, timestamp, ids
            )

    def _store(self, conn: Connection, batch: _Batch) -> str:
        raw.insert_rows(conn, ledger_events, _EVENT_COLUMNS, batch.rows)
        stored = [node for node in batch.nodes if node[0] >= LEDGER_NODES_MIN_LEVEL]
        raw.insert_rows(conn, ledger_nodes, ("level", "idx", "hash"), stored)
        checkpoint = Checkpoint(self.origin, batch.tree.size, batch.tree.root())
        note = sign_note(checkpoint.to_text(), self.signer)
        raw.execute(
            conn,
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
            (checkpoint.size, checkpoint.root_hash, note, self.clock()),
        )
        return note

    # -- reading ---------------------------------------------------------------------------

    def size(self) -> int:
        with self.db.read() as conn:
            return self._size(conn)

    def latest_checkpoint(self) -> tuple[Checkpoint, str]:
        """The newest signed checkpoint as (parsed body, signed note).

        Raises:
            NotFoundError: the log has no checkpoint yet.
        """
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(ledger_checkpoints.c.note)
                .order_by(ledger_checkpoints.c.size.desc())
                .limit(1)
            ).first()
        if row is None:
            raise NotFoundError("the log has no checkpoint yet", hint="append an event first")
        note = str(row.note)
        return Checkpoint.from_text(open_note(note, [self.verifier_key])), note

    def checkpoint_at(self, size: int) -> str:
        """The signed checkpoint note stored for tree size ``size``, signature checked.

        Raises:
            NotFoundError: no checkpoint was signed at that size.
            VerificationError: the stored note is not signed by this log's key.
        """
        with self.db.read() as conn:
            note = conn.execute(
                sa.select(ledger_checkpoints.c.note).where(ledger_checkpoints.c.size == size)
            ).scalar()
        if note is None:
            raise NotFoundError(f"no checkpoint was signed at tree size {size}")
        open_note(str(note), [self.verifier_key])  # never hand out a note we cannot vouch for
        return str(note)

    def event(self, ref: int | str) -> Event:
        """One event by leaf index or by event id.

        Raises:
            NotFoundError: no such event.
        """
        column = "seq" if isinstance(ref, int) else "event_id"
        with self.db.read() as conn:
            rows = raw.execute(conn, f"SELECT body FROM ledger_events WHERE {column} = ?", (ref,))
        body = bytes(rows[0][0]) if rows else None
        if body is None:
            raise NotFoundError(
                f"event {ref!r} is not in the log", hint="list events with `mltrail log`"
            )
        return Event.from_bytes(body)

    def events(self, where: EventFilter | None = None) -> Iterator[Event]:
        """Events matching ``where`` in log order (or reversed), streamed."""
        query = _filtered(
            sa.select(ledger_events.c.body), where or EventFilter(), self.subjects_in_refs
        )
        with self.db.read() as conn:
            for row in conn.execute(query):
                yield Event.from_bytes(row[0])

    # -- proving ---------------------------------------------------------------------------

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path for leaf ``index`` in the tree of ``size`` (default: current size).

        Raises:
            InvalidInputError: the index or size is out of range.
        """
        with self.db.read() as conn:
            size = self._checked_size(conn, size)
            if not 0 <= index < size:
                raise InvalidInputError(f"leaf index {index} is outside the tree of size {size}")
            return self._ranges_hashes(conn, merkle.inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Proof that the tree of ``size1`` is a prefix of the tree of ``size2``."""
        with self.db.read() as conn:
            size2 = self._checked_size(conn, size2)
            if not 0 < size1 <= size2:
                raise InvalidInputError(
                    f"consistency needs 0 < size1 <= size2, got size1={size1}, size2={size2}"
                )
            return self._ranges_hashes(conn, merkle.consistency_ranges(size1, size2))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of ``size`` leaves, from stored subtrees."""
        with self.db.read() as conn:
            size = self._checked_size(conn, size)
            if size == 0:
                return merkle.EMPTY_ROOT
            return self._ranges_hashes(conn, [(0, size)])[0]

    # -- internals -------------------------------------------------------------------------

    def _size(self, conn: Connection) -> int:
        [(top,)] = raw.execute(conn, "SELECT max(seq) FROM ledger_events")
        return 0 if top is None else int(top) + 1

    def _checked_size(self, conn: Connection, size: int | None) -> int:
        current = self._size(conn)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise InvalidInputError(f"tree size {size} is outside 0..{current}, the log's size")
        return size

    def _frontier(self, conn: Connection, size: int) -> merkle.CompactRange:
        if self._cache is not None and self._cache.size == size:
            return self._cache
        ids = merkle.root_nodes(size)
        found = _fetch_nodes(conn, ids)
        return merkle.CompactRange(size, [found[i] for i in ids])

    def _ranges_hashes(self, conn: Connection, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        parts = [merkle.range_nodes(start, end) for start, end in ranges]
        found = _fetch_nodes(conn, [node for part in parts for node in part])
        return [merkle.subtree_range_hash([found[n] for n in part]) for part in parts]


_EVENT_COLUMNS = (
    "seq", "event_id", "event_sha256", "body", "action", "actor_id", "subject_type",
    "subject_id", "ts",
)  # fmt: skip


@dataclass
class _Batch:
    """The events of one append: their rows, leaf hashes, and the Merkle nodes they create.

    Events are built from the drafts only when asked for (projections need them, a bare
    log append does not); likewise the node map that receipts' proofs are read from.
    """

    drafts: Sequence[Draft]
    timestamp: str
    base: merkle.CompactRange  # the tree before the batch
    tree: merkle.CompactRange  # the tree after it
    rows: list[tuple[Any, ...]]  # in _EVENT_COLUMNS order
    leaves: list[bytes]  # leaf hashes, in order
    nodes: list[tuple[int, int, bytes]]  # interior nodes completed, (level, idx, hash)
    sealed: list[Event] | None = None
    _known: dict[merkle.NodeId, bytes] | None = None

    @property
    def events(self) -> list[Event]:
        if self.sealed is None:
            self.sealed = [
                draft.seal(event_id=row[1], seq=row[0], timestamp=self.timestamp)
                for draft, row in zip(self.drafts, self.rows, strict=True)
            ]
        return self.sealed

    def proof(self, index: int) -> list[bytes]:
        # Every node a receipt's proof needs is a frontier node from before the batch or a
        # node the batch creates, so receipts need no query (see merkle.inclusion_ranges).
        if self._known is None:
            first = self.base.size
            known = dict(zip(merkle.root_nodes(first), self.base.hashes(), strict=True))
            known.update(((0, first + i), leaf) for i, leaf in enumerate(self.leaves))
            known.update(((level, idx), node) for level, idx, node in self.nodes)
            self._known = known
        ranges = merkle.inclusion_ranges(index, self.tree.size)
        return [
            merkle.subtree_range_hash([self._known[n] for n in merkle.range_nodes(s, e)])
            for s, e in ranges
        ]


@dataclass(frozen=True, slots=True)
class _IdSource:
    """What a batch's UUIDv7 event ids are made of: one millisecond, 10 random bytes each."""

    unix_ms: int
    random: bytes

    def __getitem__(self, offset: int) -> str:
        return uuid7(self.unix_ms, self.random[10 * offset : 10 * offset + 10])


def _seal_python(
    drafts: Sequence[Draft], base: merkle.CompactRange, timestamp: str, ids: _IdSource
) -> _Batch:
    """Seal, encode and hash each draft, and grow the tree: the reference implementation."""
    tree = merkle.CompactRange(base.size, base.hashes())
    events, rows, leaves, nodes = [], [], [], []
    sha256, leaf_hash = hashlib.sha256, merkle.leaf_hash
    for offset, draft in enumerate(drafts):
        event = draft.seal(event_id=ids[offset], seq=base.size + offset, timestamp=timestamp)
        body = event.canonical_bytes()
        digest = sha256(body).digest()
        events.append(event)
        rows.append(
            (
                event.seq,
                event.event_id,
                digest,
                body,
                event.action,
                event.actor.id,
                event.subject.type,
                event.subject.id,
                event.timestamp,
            )
        )
        [(_, _, leaf), *created] = tree.append(leaf_hash(digest))
        leaves.append(leaf)
        nodes.extend(created)
    return _Batch(drafts, timestamp, base, tree, rows, leaves, nodes, sealed=events)


def _seal_native(
    drafts: Sequence[Draft], base: merkle.CompactRange, timestamp: str, ids: _IdSource
) -> _Batch | None:
    """`_seal_python` in C (`mltrail._native`), or None if not built or a draft needs Python.

    The C loop encodes each body as `Event.canonical_bytes` does and hashes as `merkle`
    does; a property test holds its batch equal to `_seal_python`'s.
    """
    if _native is None:
        return None
    sealed = _native.seal_batch(
        list(drafts), base.size, timestamp, ids.unix_ms, ids.random, base.hashes()
    )
    if sealed is None:
        return None
    rows, leaves, nodes, edge = sealed
    tree = merkle.CompactRange(base.size + len(drafts), edge)
    return _Batch(drafts, timestamp, base, tree, rows, leaves, nodes)


class Receipts(Sequence[Receipt]):
    """The receipts of one append; each proof is computed when first asked for."""

    def __init__(self, batch: _Batch, note: str) -> None:
        self._batch = batch
        self._note = note

    def __len__(self) -> int:
        return len(self._batch.rows)

    @property
    def events(self) -> list[Event]:
        """The events as sealed and stored, in the same order as the receipts."""
        return self._batch.events

    @overload
    def __getitem__(self, item: int) -> Receipt: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[Receipt]: ...
    def __getitem__(self, item: int | slice) -> Receipt | Sequence[Receipt]:
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        index, _, digest = self._batch.rows[item][:3]
        return Receipt(index, digest.hex(), self._note, tuple(self._batch.proof(index)))


def _fetch_nodes(conn: Connection, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
    """Hashes for ``ids``: leaves from event digests, subtrees below `LEDGER_NODES_MIN_LEVEL`
    rehashed from those, the rest from ledger_nodes.

    One indexed lookup per level, in plain SQL: a proof needs O(log n) of them, and at most
    2**LEDGER_NODES_MIN_LEVEL leaf digests per low subtree.
    """
    wanted: dict[int, set[int]] = {}
    low: list[merkle.NodeId] = []
    for level, idx in set(ids):
        if 0 < level < LEDGER_NODES_MIN_LEVEL:
            low.append((level, idx))
            wanted.setdefault(0, set()).update(range(idx << level, (idx + 1) << level))
        else:
            wanted.setdefault(level, set()).add(idx)
    found: dict[merkle.NodeId, bytes] = {}
    for level, idxs in wanted.items():
        marks = ", ".join("?" * len(idxs))
        if level == 0:
            rows = raw.execute(
                conn,
                f"SELECT seq, event_sha256 FROM ledger_events WHERE seq IN ({marks})",
                sorted(idxs),
            )
            found.update({(0, int(seq)): merkle.leaf_hash(bytes(d)) for seq, d in rows})
        else:
            rows = raw.execute(
                conn,
                f"SELECT idx, hash FROM ledger_nodes WHERE level = ? AND idx IN ({marks})",
                [level, *sorted(idxs)],
            )
            found.update({(level, int(ix)): bytes(h) for ix, h in rows})
    for level, idx in low:
        span = range(idx << level, (idx + 1) << level)
        if all((0, i) in found for i in span):
            found[(level, idx)] = merkle.root_hash([found[(0, i)] for i in span])
    missing = [node for node in ids if node not in found]
    if missing:
        raise ConflictError(
            f"the stored Merkle tree is missing subtree hashes {missing[:3]}",
            hint="the ledger tables were changed outside mltrail; run `mltrail verify`",
        )
    return found


def _filtered(
    query: sa.Select[bytes], where: EventFilter, subjects_in_refs: bool
) -> sa.Select[bytes]:
    c = ledger_events.c
    conditions = [
        column == value
        for column, value in (
            (c.subject_type, where.subject_type),
            (c.subject_id, where.subject_id),
            (c.action, where.action),
            (c.actor_id, where.actor_id),
        )
        if value is not None
    ]
    if subjects_in_refs and where.subject_type is not None and where.subject_id is not None:
        refs = event_refs.c
        conditions.append(
            c.seq.in_(
                sa.select(refs.seq).where(
                    refs.ref_type == where.subject_type, refs.ref_id == where.subject_id
                )
            )
        )
    if where.since is not None:
        conditions.append(c.ts >= where.since)
    if where.until is not None:
        conditions.append(c.ts < where.until)
    if where.start:
        conditions.append(c.seq >= where.start)
    query = query.where(*conditions).order_by(c.seq.desc() if where.descending else c.seq)
    return query.limit(where.limit) if where.limit is not None else query
