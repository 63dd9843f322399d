"""Full verification of a stored log: the one place that reads the whole log.

`audit` recomputes every event digest from the stored canonical bytes, checks the derived
query columns against those bytes, rebuilds the Merkle tree, compares every stored subtree
hash and checkpoint root with the recomputed ones, checks the newest checkpoint's signature
against keys the caller trusts (never keys read from the database being checked), and, given
a checkpoint the caller kept (`trusted`), proves the current log extends it.

Problems are collected, not raised, so the report names the first bad index and what is
wrong; `AuditReport.raise_for_problems()` turns a failed audit into a VerificationError.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.canonical import encode_string
from mltrail.errors import FormatError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note
from mltrail.storage import raw
from mltrail.storage.database import Database
from mltrail.storage.schema import ledger_checkpoints, ledger_events

__all__ = ["AuditReport", "Problem", "audit"]

Progress = Callable[[int, int], None]
_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold, at a leaf index when it has one."""

    kind: str  # digest mismatch, missing leaf, column mismatch, root mismatch, ...
    detail: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"index {self.index}: " if self.index is not None else ""
        return f"{where}{self.kind}: {self.detail}"


@dataclass
class AuditReport:
    """What `audit` checked and found."""

    size: int = 0
    checkpoint_size: int = 0
    root: str = ""
    checkpoints_checked: int = 0
    nodes_checked: int = 0
    trusted_size: int | None = None
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first_problem(self) -> Problem | None:
        indexed = [p for p in self.problems if p.index is not None]
        # Stored subtree hashes are derived from the events and are indexed by their first
        # leaf, so one changed event also breaks subtrees that start before it: name the
        # event problem, and a node mismatch only when the events themselves are fine.
        primary = [p for p in indexed if p.kind != "node mismatch"] or indexed
        if primary:
            return min(primary, key=lambda p: p.index or 0)
        return self.problems[0] if self.problems else None

    def raise_for_problems(self) -> None:
        """Raises VerificationError naming the first problem, if there is any."""
        first = self.first_problem()
        if first is not None:
            raise VerificationError(
                f"log verification failed: {first}",
                errors=[str(p) for p in self.problems[:50]],
                hint="the log was changed outside mltrail; keep this database for investigation "
                "and restore from a copy that verifies",
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "size": self.size,
            "checkpoint_size": self.checkpoint_size,
            "root": self.root,
            "checkpoints_checked": self.checkpoints_checked,
            "nodes_checked": self.nodes_checked,
            "trusted_size": self.trusted_size,
            "seconds": round(self.seconds, 3),
            "problems": [
                {"index": p.index, "kind": p.kind, "detail": p.detail} for p in self.problems
            ],
        }


def audit(
    db: Database,
    verifier_keys: Iterable[str],
    *,
    trusted: str | None = None,
    progress: Progress | None = None,
    all_signatures: bool = False,
) -> AuditReport:
    """Verify the whole log against ``verifier_keys``; see the module docstring.

    Args:
        db: the registry database.
        verifier_keys: note verifier keys of the registry (from its key file or the auditor).
        trusted: a signed checkpoint note kept earlier by the caller or a witness.
        progress: called with (events done, total) every few thousand events.
        all_signatures: also check the signature of every stored checkpoint, not only the
            newest (one Ed25519 verification per append ever made).
    """
    keys = list(verifier_keys)
    started = time.perf_counter()
    report = AuditReport()
    with db.read() as conn:
        checkpoints = _checkpoint_roots(conn)
        latest = _latest_checkpoint(conn, keys, report)
        pinned = _trusted_checkpoint(trusted, keys, report)
        wanted = dict(checkpoints)
        total = int(
            conn.execute(sa.select(sa.func.count()).select_from(ledger_events)).scalar() or 0
        )
        leaves = _check_events(conn, report, total, progress)
        root, levels = _check_tree(leaves, wanted, latest, pinned, report)
        report.size = len(leaves)
        report.root = root.hex()
        report.checkpoints_checked = len(checkpoints)
        _check_nodes(conn, levels, len(leaves), report)
        if all_signatures:
            _check_signatures(conn, keys, report)
    _check_coverage(report, latest, pinned)
    report.seconds = time.perf_counter() - started
    return report


def _checkpoint_roots(conn: Connection) -> dict[int, bytes]:
    rows = conn.execute(sa.select(ledger_checkpoints.c.size, ledger_checkpoints.c.root))
    return {int(size): bytes(root) for size, root in rows}


def _check_signatures(conn: Connection, keys: list[str], report: AuditReport) -> None:
    """Every stored note must be signed by the log and agree with its size and root columns."""
    c = ledger_checkpoints.c
    for size, root, note in conn.execute(sa.select(c.size, c.root, c.note).order_by(c.size)):
        try:
            body = Checkpoint.from_text(open_note(str(note), keys))
        except (VerificationError, FormatError) as exc:
            report.problems.append(
                Problem("bad signature", f"checkpoint at size {size}: {exc}", int(size) - 1)
            )
            continue
        if body.size != int(size) or body.root_hash != bytes(root):
            report.problems.append(
                Problem(
                    "checkpoint mismatch",
                    f"note at size {size} disagrees with its columns",
                    int(size) - 1,
                )
            )


def _latest_checkpoint(conn: Connection, keys: list[str], report: AuditReport) -> Checkpoint | None:
    note = conn.execute(
        sa.select(ledger_checkpoints.c.note).order_by(ledger_checkpoints.c.size.desc()).limit(1)
    ).scalar()
    if note is None:
        return None
    try:
        checkpoint = Checkpoint.from_text(open_note(str(note), keys))
    except (VerificationError, FormatError) as exc:
        report.problems.append(Problem("bad signature", f"newest checkpoint: {exc}"))
        return None
    report.checkpoint_size = checkpoint.size
    return checkpoint


def _trusted_checkpoint(
    note: str | None, keys: list[str], report: AuditReport
) -> Checkpoint | None:
    if note is None:
        return None
    try:
        checkpoint = Checkpoint.from_text(open_note(note, keys))
    except (VerificationError, FormatError) as exc:
        report.problems.append(Problem("bad signature", f"trusted checkpoint: {exc}"))
        return None
    report.trusted_size = checkpoint.size
    return checkpoint


def _check_events(
    conn: Connection, report: AuditReport, total: int, progress: Progress | None
) -> list[bytes]:
    """Re-hash every event and check its columns; returns the recomputed leaf hashes."""
    leaves: list[bytes] = []
    sha256 = hashlib.sha256
    for row in _stream_events(conn):
        seq, stored, body = int(row[0]), bytes(row[1]), bytes(row[2])
        while len(leaves) < seq:  # a gap: the event at this index was removed
            report.problems.append(Problem("missing leaf", "no event is stored here", len(leaves)))
            leaves.append(b"")
        digest = sha256(body).digest()
        if digest != stored:
            report.problems.append(
                Problem(
                    "digest mismatch",
                    f"stored {stored.hex()[:16]}…, bytes hash to {digest.hex()[:16]}…",
                    seq,
                )
            )
        if not _columns_match(body, row):
            report.problems.append(
                Problem("column mismatch", "a query column disagrees with the event's bytes", seq)
            )
        leaves.append(sha256(b"\x00" + digest).digest())
        if progress is not None and len(leaves) % _CHUNK == 0:
            progress(len(leaves), total)
    if progress is not None:
        progress(len(leaves), total)
    return leaves


_STREAM = (
    "SELECT seq, event_sha256, body, action, actor_id, event_id, subject_type, subject_id, ts "
    "FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT ?"
)


def _stream_events(conn: Connection) -> Iterator[tuple[Any, ...]]:
    last = -1
    while True:  # keyset pagination: bounded memory on both dialects
        rows = raw.execute(conn, _STREAM, (last, _CHUNK))
        if not rows:
            return
        yield from rows
        last = int(rows[-1][0])


def _check_tree(
    leaves: list[bytes],
    checkpoints: dict[int, bytes],
    latest: Checkpoint | None,
    pinned: Checkpoint | None,
    report: AuditReport,
) -> tuple[bytes, list[list[bytes]]]:
    """Rebuild the tree leaf by leaf, comparing each stored checkpoint root on the way.

    Returns the root and every complete subtree hash per level (index 0 is level 1), in
    index order, for `_check_nodes`.
    """
    tree = merkle.CompactRange()
    levels: list[list[bytes]] = []
    special = set(checkpoints) | {c.size for c in (latest, pinned) if c is not None}
    for position, leaf in enumerate(leaves):
        for level, _, node in tree.append(leaf or merkle.leaf_hash(b"missing")):
            if level:
                if len(levels) < level:
                    levels.append([])
                levels[level - 1].append(node)
        size = position + 1
        if size not in special:
            continue
        if size in checkpoints and checkpoints[size] != tree.root():
            report.problems.append(
                Problem(
                    "root mismatch",
                    f"checkpoint at size {size} does not match the events",
                    position,
                )
            )
        _check_signed(size, tree, latest, "newest signed checkpoint", report)
        _check_signed(size, tree, pinned, "trusted checkpoint (inconsistent history)", report)
    return tree.root(), levels


def _check_signed(
    size: int,
    tree: merkle.CompactRange,
    checkpoint: Checkpoint | None,
    what: str,
    report: AuditReport,
) -> None:
    if checkpoint is not None and checkpoint.size == size and checkpoint.root_hash != tree.root():
        report.problems.append(
            Problem("root mismatch", f"{what} at size {size} has a different root", size - 1)
        )


def _check_nodes(
    conn: Connection, levels: list[list[bytes]], size: int, report: AuditReport
) -> None:
    """Every stored subtree hash must equal the one recomputed from the events."""
    for level, computed in enumerate(levels, start=1):
        stored = raw.execute(conn, "SELECT idx, hash FROM ledger_nodes WHERE level = ?", (level,))
        for idx, digest in stored:
            report.nodes_checked += 1
            if int(idx) >= len(computed) or bytes(digest) != computed[int(idx)]:
                report.problems.append(
                    Problem(
                        "node mismatch",
                        f"stored subtree ({level}, {idx}) is not the recomputed one",
                        min(int(idx) << level, max(size - 1, 0)),
                    )
                )


def _check_coverage(
    report: AuditReport, latest: Checkpoint | None, pinned: Checkpoint | None
) -> None:
    if latest is not None and latest.size > report.size:
        report.problems.append(
            Problem(
                "truncated",
                f"newest checkpoint covers {latest.size} events, the log holds {report.size}",
                report.size,
            )
        )
    if latest is not None and latest.size < report.size:
        report.problems.append(
            Problem(
                "unsigned events",
                f"{report.size - latest.size} events after the newest signed "
                f"checkpoint (size {latest.size}) are covered by no signature",
                latest.size,
            )
        )
    if (
        latest is None
        and report.size
        and not any(p.kind == "bad signature" for p in report.problems)
    ):
        report.problems.append(
            Problem("no checkpoint", f"{report.size} events and no signed checkpoint")
        )
    if pinned is not None and pinned.size > report.size:
        report.problems.append(
            Problem(
                "rollback",
                f"log size {report.size} is smaller than trusted size {pinned.size}; "
                "refusing possible rollback",
                report.size,
            )
        )


def _columns_match(body: bytes, row: tuple[Any, ...]) -> bool:
    """Check the derived columns against the canonical bytes without parsing them.

    RFC 8785 sorts keys, so an event body starts with action, actor (id, type), event_id
    and ends with seq, subject ({digest?, id, type}), timestamp. Strings cannot contain an
    unescaped quote, so these anchors are unambiguous.
    """
    seq, action, actor, event_id, stype, sid, ts = row[0], *row[3:]
    q = encode_string
    head = ('{"action":' + q(action) + ',"actor":{"id":' + q(actor) + ',"type":"').encode()
    if not body.startswith(head):
        return False
    after_type = body.find(b'"},"event_id":', len(head))
    if after_type < 0 or not body.startswith(
        (q(event_id) + ',"integrity":{').encode(), after_type + 14
    ):
        return False
    tail = ('"id":' + q(sid) + ',"type":' + q(stype) + '},"timestamp":' + q(ts) + "}").encode()
    if not body.endswith(tail):
        return False
    lead = b',"seq":' + str(seq).encode() + b',"subject":{'
    before = body[: len(body) - len(tail)]
    with_digest = len(b'"digest":"') + 64 + len(b'",')
    return before.endswith(lead) or (
        before[-with_digest:].startswith(b'"digest":"') and before[:-with_digest].endswith(lead)
    )
