"""A state machine over a SQLite `Log` (STYLE §8): appends, batches, failed appends,
reopening and checkpoints, in any order. Checkpoints never shrink, every older checkpoint
is consistent with the newest, and every receipt ever returned still verifies."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mltrail.events import Actor, Draft, Event, Ref
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, open_note
from mltrail.ledger.log import Log, Receipt
from mltrail.storage.database import Database
from mltrail.storage.migrate import upgrade

ORIGIN = "test.mltrail/machine"
SIGNER = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
KEYS = [SIGNER.verifier_key]

subjects = st.sampled_from(["churn", "fraud", "ranker"])
actions = st.sampled_from(["register", "promote", "note"])


class ProjectionFailed(Exception):
    pass


def _fail(conn: Any, events: Sequence[Event]) -> None:
    raise ProjectionFailed


def _open(note: str) -> Checkpoint:
    return Checkpoint.from_text(open_note(note, KEYS))


@functools.cache
def _migrated() -> sqlite3.Connection:
    """One migrated database; each machine starts from a copy (migrating costs ~0.2 s)."""
    template = Database.connect("sqlite://")
    upgrade(template)
    connection = template.engine.raw_connection().driver_connection
    assert isinstance(connection, sqlite3.Connection)
    return connection


def _fresh_database() -> Database:
    db = Database.connect("sqlite://")
    connection = db.engine.raw_connection()
    try:
        _migrated().backup(connection.driver_connection)
    finally:
        connection.close()
    return db


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.db = _fresh_database()
        self.log = Log(self.db, SIGNER)
        self.size = 0  # what the model expects the log to hold
        self.by_note: dict[str, list[Receipt]] = {}  # every receipt, by its checkpoint
        self.opened: dict[str, Checkpoint] = {}  # each note's body, its signature checked once
        self.checkpoints: list[Checkpoint] = []  # taken by `take_checkpoint`, in order

    def teardown(self) -> None:
        self.db.dispose()

    def _append(self, drafts: list[Draft]) -> None:
        receipts = self.log.append(drafts)
        assert [r.index for r in receipts] == list(range(self.size, self.size + len(drafts)))
        self.size += len(drafts)
        note = receipts[0].checkpoint
        self.opened[note] = _open(note)
        assert self.opened[note].size == self.size
        for receipt in receipts:
            assert receipt.checkpoint == note  # one append, one checkpoint
            receipt.verify(KEYS)
            self.by_note.setdefault(note, []).append(receipt)

    @rule(subject=subjects, action=actions)
    def append_one(self, subject: str, action: str) -> None:
        self._append([Draft(action, Actor("user", "ann"), Ref("model", subject))])

    @rule(subject=subjects, count=st.integers(min_value=2, max_value=9))
    def append_batch(self, subject: str, count: int) -> None:
        self._append(
            [
                Draft("note", Actor("service", "ci"), Ref("model", subject), metadata={"n": n})
                for n in range(count)
            ]
        )

    @rule(count=st.integers(min_value=1, max_value=4))
    def append_with_failing_projection(self, count: int) -> None:
        drafts = [Draft("note", Actor("user", "ann"), Ref("model", "x"))] * count
        with pytest.raises(ProjectionFailed):
            self.log.append(drafts, project=_fail)
        assert self.log.size() == self.size

    @rule()
    def reopen(self) -> None:
        """A new Log on the same database: no cached frontier, everything from the tables."""
        self.log = Log(self.db, SIGNER)

    @precondition(lambda self: self.size > 0)
    @rule()
    def take_checkpoint(self) -> None:
        checkpoint, note = self.log.latest_checkpoint()
        assert checkpoint == _open(note)
        assert checkpoint.size == self.size
        self.checkpoints.append(checkpoint)

    @invariant()
    def log_holds_what_was_appended(self) -> None:
        assert self.log.size() == self.size

    @invariant()
    def checkpoints_never_shrink(self) -> None:
        sizes = [c.size for c in self.checkpoints]
        assert sizes == sorted(sizes)
        if self.size:
            assert self.log.latest_checkpoint()[0].size >= (sizes[-1] if sizes else 0)

    @invariant()
    def older_checkpoints_are_consistent_with_the_newest(self) -> None:
        if not self.size:
            return
        newest, _ = self.log.latest_checkpoint()
        assert newest.root_hash == self.log.root()
        older = {(c.size, c.root_hash) for c in [*self.checkpoints, *self.opened.values()]}
        for size, root in older:
            proof = self.log.consistency_proof(size, newest.size)
            merkle.verify_consistency(size, newest.size, proof, root, newest.root_hash)

    @invariant()
    def every_receipt_still_verifies(self) -> None:
        stored = {e.seq: e.event_sha256 for e in self.log.events()}
        assert sorted(stored) == list(range(self.size))
        for note, receipts in self.by_note.items():
            then = self.opened[note]
            assert self.log.root(then.size) == then.root_hash
            for receipt in receipts:  # Receipt.verify, the signature being checked already
                merkle.verify_inclusion(
                    receipt.leaf_hash, receipt.index, then.size, receipt.proof, then.root_hash
                )
                assert stored[receipt.index] == receipt.event_sha256


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=20,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
