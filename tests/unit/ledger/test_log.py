"""`mltrail.ledger.log`: receipts, proofs served from stored subtrees, queries, atomicity."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.errors import (
    ConflictError,
    FormatError,
    InvalidInputError,
    NotFoundError,
    VerificationError,
)
from mltrail.events import Actor, Draft, Event, Ref
from mltrail.ledger import log as log_module
from mltrail.ledger import merkle
from mltrail.ledger.audit import audit
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, open_note
from mltrail.ledger.log import EventFilter, Log, Receipt, parse_receipt
from mltrail.storage.database import Database
from mltrail.storage.migrate import upgrade
from mltrail.storage.raw import COPY_THRESHOLD

ORIGIN = "test.mltrail/log"
T = [f"2024-05-15T09:0{m}:00.000000Z" for m in range(6)]


class Clock:
    """The registry clock, set by the test."""

    def __init__(self) -> None:
        self.now = T[0]

    def __call__(self) -> str:
        return self.now


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database.connect("sqlite://")
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(db: Database, clock: Clock) -> Log:
    return Log(db, NoteSigner.from_seed(ORIGIN, bytes(32)), clock=clock)


def _draft(
    n: int | str = 0, *, action: str = "note", actor: str = "alice", subject: Ref | None = None
) -> Draft:
    return Draft(
        action,
        Actor("user", actor),
        subject or Ref("model", f"m{n}"),
        metadata={"outcome": "success", "n": n},
    )


def _leaves(log: Log) -> list[bytes]:
    return [merkle.leaf_hash(bytes.fromhex(e.event_sha256)) for e in log.events()]


def _checkpoint(note: str, log: Log) -> Checkpoint:
    return Checkpoint.from_text(open_note(note, [log.verifier_key]))


# -- receipts ---------------------------------------------------------------------------------


def test_receipts_verify_and_name_the_stored_events(log: Log) -> None:
    log.append([_draft(0)])
    receipts = log.append([_draft(1), _draft(2), _draft(3)])

    assert [r.index for r in receipts] == [1, 2, 3]
    assert [e.seq for e in receipts.events] == [1, 2, 3]
    for receipt, event in zip(receipts, receipts.events, strict=True):
        receipt.verify([log.verifier_key])
        assert receipt.event_sha256 == event.event_sha256 == log.event(receipt.index).event_sha256
        assert log.event(event.event_id) == event
        assert _checkpoint(receipt.checkpoint, log).size == 4
    assert receipts[1:] == [receipts[1], receipts[2]]
    assert log.size() == 4
    assert log.latest_checkpoint()[1] == receipts[0].checkpoint == log.checkpoint_at(4)


def test_receipt_does_not_verify_with_another_key_or_a_changed_proof(log: Log) -> None:
    log.append([_draft(i) for i in range(5)])
    receipt = log.append([_draft(5)])[0]
    stranger = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
    flipped = bytes([receipt.proof[0][0] ^ 1]) + receipt.proof[0][1:]

    with pytest.raises(VerificationError):
        receipt.verify([stranger.verifier_key])
    with pytest.raises(VerificationError):
        replace(receipt, proof=(flipped, *receipt.proof[1:])).verify([log.verifier_key])
    with pytest.raises(VerificationError):
        replace(receipt, event_sha256="00" * 32).verify([log.verifier_key])
    with pytest.raises(VerificationError):
        replace(receipt, index=4).verify([log.verifier_key])


def test_receipt_text_round_trips(log: Log) -> None:
    receipts = [r for n in (1, 2, 5, 1, 9) for r in log.append([_draft(i) for i in range(n)])]

    for receipt in receipts:
        text = receipt.to_text()
        assert text.startswith("c2sp.org/tlog-proof@v1\n")
        parsed = parse_receipt(text)
        assert parsed == receipt
        parsed.verify([log.verifier_key])


def _good_text() -> str:
    proof = base64.b64encode(bytes(32)).decode()
    return f"c2sp.org/tlog-proof@v1\nextra {'ab' * 32}\nindex 3\n{proof}\n\nnote\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        _good_text().replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        _good_text().replace("\n\n", "\n"),
        _good_text().replace("extra ", "digest "),
        _good_text().replace("index 3", "leaf 3"),
        _good_text().replace("index 3", "index three"),
        _good_text().replace(base64.b64encode(bytes(32)).decode(), "not*base64"),
    ],
    ids=[
        "empty",
        "wrong-header",
        "no-blank-line",
        "no-extra",
        "no-index",
        "bad-index",
        "bad-proof-hash",
    ],
)
def test_malformed_receipt_text_is_refused(text: str) -> None:
    with pytest.raises(FormatError):
        parse_receipt(text)


def test_well_formed_receipt_text_parses() -> None:  # the base the bad cases above vary
    assert parse_receipt(_good_text()) == Receipt(3, "ab" * 32, "note\n", (bytes(32),))


# -- proofs from the store --------------------------------------------------------------------

BATCHES = (1, 1, 2, 3, 1, 5, 8, 1, 13, 4, 2, 7, 16, 1, 3)
EXHAUSTIVE = 20


def test_proofs_from_stored_subtrees_equal_proofs_from_all_leaves(log: Log) -> None:
    sizes = []
    for batch in BATCHES:
        receipts = log.append([_draft(i) for i in range(batch)])
        size = log.size()
        sizes.append(size)
        leaves = _leaves(log)
        for receipt in receipts:  # proofs built during the append, before any query
            assert list(receipt.proof) == merkle.inclusion_proof(leaves, receipt.index)
        assert log.root() == merkle.root_hash(leaves)
        assert _checkpoint(receipts[0].checkpoint, log).root_hash == merkle.root_hash(leaves)

    leaves = _leaves(log)
    assert len(leaves) == sum(BATCHES)
    for size in range(1, len(leaves) + 1):
        assert log.root(size) == merkle.root_hash(leaves[:size])
    # Every proof for every small tree (signed or not), and for every signed tree: each
    # index, and consistency from each smaller signed tree.
    for size in sorted({*range(1, EXHAUSTIVE + 1), *sizes}):
        prefix = leaves[:size]
        for index in range(size):
            assert log.inclusion_proof(index, size) == merkle.inclusion_proof(prefix, index)
        older = range(1, size + 1) if size <= EXHAUSTIVE else [s for s in sizes if s <= size]
        for size1 in older:
            assert log.consistency_proof(size1, size) == merkle.consistency_proof(prefix, size1)
    assert log.root(0) == merkle.EMPTY_ROOT
    assert log.consistency_proof(sizes[0]) == merkle.consistency_proof(leaves, sizes[0])


def test_a_fresh_log_object_serves_the_same_proofs(log: Log, db: Database) -> None:
    for batch in BATCHES[:8]:
        log.append([_draft(i) for i in range(batch)])
    reopened = Log(db, log.signer)  # no cached frontier: everything comes from the tables

    receipt = reopened.append([_draft("late")])[0]

    leaves = _leaves(log)
    assert list(receipt.proof) == merkle.inclusion_proof(leaves, receipt.index)
    assert log.root() == reopened.root() == merkle.root_hash(leaves)
    assert audit(db, [log.verifier_key]).ok


@pytest.mark.parametrize(
    ("index", "size"),
    [(-1, None), (6, None), (0, 7), (3, 3), (0, -1)],
    ids=[
        "negative-index",
        "index-at-size",
        "size-beyond-log",
        "index-beyond-size",
        "negative-size",
    ],
)
def test_inclusion_proof_out_of_range_is_refused(log: Log, index: int, size: int | None) -> None:
    log.append([_draft(i) for i in range(6)])
    with pytest.raises(InvalidInputError):
        log.inclusion_proof(index, size)


@pytest.mark.parametrize(
    ("size1", "size2"),
    [(0, None), (7, None), (4, 3), (1, 7)],
    ids=["zero", "beyond-log", "shrinking", "size2-beyond-log"],
)
def test_consistency_proof_out_of_range_is_refused(log: Log, size1: int, size2: int | None) -> None:
    log.append([_draft(i) for i in range(6)])
    with pytest.raises(InvalidInputError):
        log.consistency_proof(size1, size2)


# -- reading ----------------------------------------------------------------------------------


@pytest.fixture
def history(log: Log, clock: Clock) -> Log:
    """Six events at known times, by known actors, on known subjects."""
    churn, fraud = Ref("model", "churn"), Ref("model", "fraud")
    appends: list[tuple[str, Sequence[Draft]]] = [
        (T[0], [_draft(0, action="register", subject=churn)]),
        (T[1], [_draft(1, action="promote", actor="bob", subject=churn)]),
        (
            T[2],
            [
                _draft(2, action="register", subject=Ref("dataset", "DS1")),
                _draft(3, action="note", subject=fraud),
            ],
        ),
        (T[3], [_draft(4, action="promote", subject=fraud)]),
        (T[4], [_draft(5, action="approve", actor="bob", subject=churn)]),
    ]
    for moment, drafts in appends:
        clock.now = moment
        log.append(drafts)
    return log


@pytest.mark.parametrize(
    ("where", "seqs"),
    [
        (EventFilter(), [0, 1, 2, 3, 4, 5]),
        (EventFilter(subject_type="model", subject_id="churn"), [0, 1, 5]),
        (EventFilter(subject_type="model"), [0, 1, 3, 4, 5]),
        (EventFilter(subject_id="DS1"), [2]),
        (EventFilter(action="promote"), [1, 4]),
        (EventFilter(actor_id="bob"), [1, 5]),
        (EventFilter(action="register", actor_id="alice"), [0, 2]),
        (EventFilter(since=T[2]), [2, 3, 4, 5]),
        (EventFilter(until=T[2]), [0, 1]),
        (EventFilter(since=T[1], until=T[3]), [1, 2, 3]),
        (EventFilter(since=T[5]), []),
        (EventFilter(limit=2), [0, 1]),
        (EventFilter(limit=0), []),
        (EventFilter(start=3), [3, 4, 5]),
        (EventFilter(descending=True), [5, 4, 3, 2, 1, 0]),
        (EventFilter(descending=True, limit=2), [5, 4]),
        (EventFilter(subject_id="churn", descending=True, limit=1), [5]),
        (EventFilter(action="retire"), []),
    ],
    ids=[
        "all",
        "subject",
        "subject-type",
        "subject-id",
        "action",
        "actor",
        "action-and-actor",
        "since-inclusive",
        "until-exclusive",
        "time-range",
        "since-after-last",
        "limit",
        "limit-zero",
        "start",
        "descending",
        "descending-limit",
        "subject-newest",
        "no-match",
    ],
)
def test_event_filter(history: Log, where: EventFilter, seqs: list[int]) -> None:
    assert [e.seq for e in history.events(where)] == seqs


def test_events_carry_the_registry_clock(history: Log) -> None:
    assert [e.timestamp for e in history.events()] == [T[0], T[1], T[2], T[2], T[3], T[4]]


@pytest.mark.parametrize(
    "ref",
    [6, -1, "0190f000-0000-7000-8000-000000000000"],
    ids=["index-past-end", "negative-index", "unknown-id"],
)
def test_unknown_event_is_not_found(history: Log, ref: int | str) -> None:
    with pytest.raises(NotFoundError, match="not in the log"):
        history.event(ref)


def test_empty_log_has_no_checkpoint(log: Log) -> None:
    assert log.size() == 0
    assert log.root() == merkle.EMPTY_ROOT
    with pytest.raises(NotFoundError):
        log.latest_checkpoint()
    with pytest.raises(NotFoundError):
        log.checkpoint_at(1)


# -- writing is all or nothing ----------------------------------------------------------------


def test_empty_append_is_refused(log: Log) -> None:
    log.append([_draft(0)])
    before = log.latest_checkpoint()

    with pytest.raises(InvalidInputError, match="empty"):
        log.append([])

    assert log.size() == 1
    assert log.latest_checkpoint() == before


def test_projector_sees_the_events_in_the_same_transaction(log: Log) -> None:
    seen: list[tuple[list[int], int]] = []

    def project(conn: Connection, events: Sequence[Event]) -> None:
        stored = conn.execute(sa.text("SELECT count(*) FROM ledger_events")).scalar()
        seen.append(([e.seq for e in events], int(stored or 0)))

    log.append([_draft(0)], project=project)
    log.append([_draft(1), _draft(2)], project=project)

    assert seen == [([0], 1), ([1, 2], 3)]


def test_projector_that_raises_leaves_the_log_unchanged(log: Log, db: Database) -> None:
    log.append([_draft(i) for i in range(3)])
    before = (log.size(), log.latest_checkpoint(), log.root(), list(log.events()))

    def project(conn: Connection, events: Sequence[Event]) -> None:
        conn.execute(sa.text("INSERT INTO ledger_meta (key, value) VALUES ('projected', 'x')"))
        raise RuntimeError("projection failed")

    with pytest.raises(RuntimeError, match="projection failed"):
        log.append([_draft(3), _draft(4)], project=project)

    assert (log.size(), log.latest_checkpoint(), log.root(), list(log.events())) == before
    with db.read() as conn:  # the projector's own write was rolled back with the events
        assert conn.execute(sa.text("SELECT count(*) FROM ledger_meta")).scalar() == 0
        assert conn.execute(sa.text("SELECT max(size) FROM ledger_checkpoints")).scalar() == 3
    receipt = log.append([_draft(5)])[0]  # and the next append continues from there
    assert receipt.index == 3
    receipt.verify([log.verifier_key])
    assert audit(db, [log.verifier_key]).ok


def test_a_large_batch_appends_and_a_conflicting_one_leaves_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of COPY_THRESHOLD rows or more go through COPY on PostgreSQL and executemany
    # on SQLite; both must store every row, and both must refuse a clash whole.
    db = Database.connect(database_url)
    try:
        upgrade(db)
        log = Log(db, NoteSigner.from_seed(ORIGIN, bytes(32)))
        count = 3 * COPY_THRESHOLD + 1
        receipts = log.append([_draft(i) for i in range(count)])
        assert [r.index for r in receipts] == list(range(count))
        assert [e.subject.id for e in log.events()] == [f"m{i}" for i in range(count)]
        receipts[count - 1].verify([log.verifier_key])
        before = (log.size(), log.root(), log.latest_checkpoint())

        taken = next(log.events()).event_id
        ids = iter([*(f"fresh-{i}" for i in range(count - 1)), taken])
        # The clash is forced through the Python sealer's uuid7; the database refuses it
        # whichever sealer made the rows.
        monkeypatch.setattr(log_module, "_native", None)
        monkeypatch.setattr(log_module, "uuid7", lambda *_: next(ids))
        with pytest.raises(ConflictError, match="already exists"):
            log.append([_draft(i) for i in range(count)])

        assert (log.size(), log.root(), log.latest_checkpoint()) == before
        assert audit(db, [log.verifier_key]).ok
    finally:
        db.dispose()
