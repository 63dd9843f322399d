"""Full verification of a stored log: the one place that reads the whole log.

`audit` recomputes every event digest from the stored canonical bytes, checks the derived
query columns against those bytes, rebuilds the Merkle tree, compares every stored subtree
hash and checkpoint root with the recomputed ones, checks the newest checkpoint's signature
against keys the caller trusts (never keys read from the database being checked), and, given
a checkpoint the caller kept (`trusted`), proves the current log extends it.

The events are checked in aligned chunks of the log (`mltrail.ledger.chunk`): each chunk's
events are re-hashed and column-checked and its subtrees rebuilt and compared on their own,
by worker processes when the log is big (`mltrail.ledger.pool`), and the tree above the
chunks, the checkpoint roots and the stored nodes outside any chunk are checked here.

Problems are collected, not raised, so the report names the first bad index and what is
wrong; `AuditReport.raise_for_problems()` turns a failed audit into a VerificationError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.errors import FormatError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note
from mltrail.ledger.chunk import CHUNK_LEVEL, ChunkResult, Problem, plan_chunks
from mltrail.ledger.pool import PARALLEL_MIN, check_chunks, processes_for
from mltrail.storage import raw
from mltrail.storage.database import Database
from mltrail.storage.schema import LEDGER_NODES_MIN_LEVEL, ledger_checkpoints

__all__ = ["PARALLEL_MIN", "AuditReport", "Problem", "audit"]

Progress = Callable[[int, int], None]


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
    processes: int = 1
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
            "processes": self.processes,
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
    processes: int | None = None,
    chunk_level: int = CHUNK_LEVEL,
) -> AuditReport:
    """Verify the whole log against ``verifier_keys``; see the module docstring.

    Args:
        db: the registry database.
        verifier_keys: note verifier keys of the registry (from its key file or the auditor).
        trusted: a signed checkpoint note kept earlier by the caller or a witness.
        progress: called with (events done, total) as chunks of the log are done.
        all_signatures: also check the signature of every stored checkpoint, not only the
            newest (one Ed25519 verification per append ever made).
        processes: how many processes check the events; ``None`` uses one per CPU for a
            log of `PARALLEL_MIN` events or more, and one below (see `mltrail.ledger.pool`).
        chunk_level: the log is checked in aligned chunks of ``2**chunk_level`` leaves.
    """
    keys = list(verifier_keys)
    started = time.perf_counter()
    report = AuditReport()
    with db.read() as conn:  # everything that must agree with one log size
        checkpoints = _checkpoint_roots(conn)
        latest = _latest_checkpoint(conn, keys, report)
        pinned = _trusted_checkpoint(trusted, keys, report)
        size = _log_size(conn)
        upper, beyond = _stored_nodes_outside_chunks(conn, chunk_level, size)
        signatures = _check_signatures(conn, keys) if all_signatures else []
    wanted = {*checkpoints, size, *(c.size for c in (latest, pinned) if c is not None)}
    chunks = plan_chunks(size, wanted, chunk_level)
    report.processes = min(processes_for(db, size, processes), max(len(chunks), 1))
    tree = _Tree(chunk_level)
    if progress is not None:
        progress(0, size)
    for result in check_chunks(db, chunks, report.processes):
        tree.add(result)
        report.problems.extend(result.problems)
        if progress is not None:
            progress(result.chunk.end, size)
    report.size, report.checkpoints_checked = size, len(checkpoints)
    report.root = tree.roots.get(size, merkle.EMPTY_ROOT).hex()
    _check_roots(tree.roots, checkpoints, latest, pinned, report)
    _check_nodes(tree, upper, beyond, report)
    report.problems.extend(signatures)
    _check_coverage(report, latest, pinned)
    report.seconds = time.perf_counter() - started
    return report


def _log_size(conn: Connection) -> int:
    """One past the highest leaf index stored (a removed event inside still counts)."""
    rows = raw.execute(conn, "SELECT max(seq) FROM ledger_events WHERE seq >= 0")
    return 0 if rows[0][0] is None else int(rows[0][0]) + 1


def _checkpoint_roots(conn: Connection) -> dict[int, bytes]:
    rows = conn.execute(sa.select(ledger_checkpoints.c.size, ledger_checkpoints.c.root))
    return {int(size): bytes(root) for size, root in rows}


def _check_signatures(conn: Connection, keys: list[str]) -> list[Problem]:
    """Every stored note must be signed by the log and agree with its size and root columns."""
    problems = []
    c = ledger_checkpoints.c
    for size, root, note in conn.execute(sa.select(c.size, c.root, c.note).order_by(c.size)):
        try:
            body = Checkpoint.from_text(open_note(str(note), keys))
        except (VerificationError, FormatError) as exc:
            problems.append(
                Problem("bad signature", f"checkpoint at size {size}: {exc}", int(size) - 1)
            )
            continue
        if body.size != int(size) or body.root_hash != bytes(root):
            problems.append(
                Problem(
                    "checkpoint mismatch",
                    f"note at size {size} disagrees with its columns",
                    int(size) - 1,
                )
            )
    return problems


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


_UPPER = "SELECT level, idx, hash FROM ledger_nodes WHERE level > ?"
_BEYOND = "SELECT idx FROM ledger_nodes WHERE level = ? AND idx >= ?"


def _stored_nodes_outside_chunks(
    conn: Connection, chunk_level: int, size: int
) -> tuple[list[tuple[int, int, bytes]], list[merkle.NodeId]]:
    """Stored subtrees no chunk compares: those above the chunks, and those past the log.

    Returns the nodes above ``chunk_level`` as ``(level, idx, hash)``, and the ids of the
    nodes at or below it that are not complete subtrees of a log of ``size`` leaves.
    """
    upper = [
        (int(lv), int(idx), bytes(h)) for lv, idx, h in raw.execute(conn, _UPPER, (chunk_level,))
    ]
    beyond = [
        (level, int(idx))
        for level in range(1, chunk_level + 1)
        for (idx,) in raw.execute(conn, _BEYOND, (level, size >> level))
    ]
    return upper, beyond


class _Tree:
    """The tree above the chunks: folds each chunk's hashes with the subtrees before it.

    Complete chunks are the leaves of this tree (their roots are nodes at the chunk level),
    so a `merkle.CompactRange` over them yields every complete subtree above the chunks. A
    size inside a chunk has the root ``subtree_range_hash(edge before the chunk + [the
    hash of leaves [chunk start, size)])``: the fold of RFC 6962 §2.1 runs right to left,
    so the chunk's part can be folded first (in the chunk's process) and the rest here.
    """

    def __init__(self, chunk_level: int) -> None:
        self.chunk_level = chunk_level
        self.edge = merkle.CompactRange()
        self.roots: dict[int, bytes] = {}  # tree size -> root, for every wanted size
        self.nodes: dict[merkle.NodeId, bytes] = {}  # complete subtrees above chunk_level
        self.bad: list[merkle.NodeId] = []  # stored subtrees inside chunks that differ
        self.checked = 0

    def add(self, result: ChunkResult) -> None:
        """Take the next chunk's result (chunks must come in log order)."""
        before = self.edge.hashes()
        for size, prefix in result.prefixes.items():
            self.roots[size] = merkle.subtree_range_hash([*before, prefix])
        self.bad.extend(result.bad_nodes)
        self.checked += result.nodes_checked
        chunk = result.chunk
        if chunk.end - chunk.start == 1 << chunk.level:  # complete: a leaf of the tree above
            for level, index, node in self.edge.append(result.prefixes[chunk.end]):
                if level:
                    self.nodes[(level + self.chunk_level, index)] = node


def _check_roots(
    roots: dict[int, bytes],
    checkpoints: dict[int, bytes],
    latest: Checkpoint | None,
    pinned: Checkpoint | None,
    report: AuditReport,
) -> None:
    """Each stored checkpoint root, and the signed ones, must be the rebuilt tree's root."""
    for size in sorted(roots):
        root = roots[size]
        if size in checkpoints and checkpoints[size] != root:
            report.problems.append(
                Problem(
                    "root mismatch",
                    f"checkpoint at size {size} does not match the events",
                    size - 1,
                )
            )
        _check_signed(size, root, latest, "newest signed checkpoint", report)
        _check_signed(size, root, pinned, "trusted checkpoint (inconsistent history)", report)


def _check_signed(
    size: int, root: bytes, checkpoint: Checkpoint | None, what: str, report: AuditReport
) -> None:
    if checkpoint is not None and checkpoint.size == size and checkpoint.root_hash != root:
        report.problems.append(
            Problem("root mismatch", f"{what} at size {size} has a different root", size - 1)
        )


def _check_nodes(
    tree: _Tree,
    upper: list[tuple[int, int, bytes]],
    beyond: list[merkle.NodeId],
    report: AuditReport,
) -> None:
    """Every stored subtree hash must equal the one recomputed from the events."""
    bad = tree.bad + beyond
    bad += [
        (lv, idx)
        for lv, idx, h in upper
        if lv < LEDGER_NODES_MIN_LEVEL or tree.nodes.get((lv, idx)) != h  # low: never stored
    ]
    report.nodes_checked = tree.checked + len(upper) + len(beyond)
    last = max(report.size - 1, 0)
    for level, idx in sorted(bad):
        report.problems.append(
            Problem(
                "node mismatch",
                f"stored subtree ({level}, {idx}) is not the recomputed one",
                min(idx << level, last),
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
