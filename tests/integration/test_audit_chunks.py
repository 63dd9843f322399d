"""`audit` in aligned chunks and in worker processes finds exactly what one pass finds.

Small logs with tiny chunks (a few leaves each) put every kind of boundary in play: sizes
inside a chunk and at its end, subtrees inside a chunk and above the chunks, a partial last
chunk. Each test runs on a SQLite file and on PostgreSQL; worker processes open their own
connection from the database URL.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa

from mltrail.errors import StorageError
from mltrail.events import Actor, Draft, Ref
from mltrail.ledger import chunk as chunk_module
from mltrail.ledger import merkle, pool
from mltrail.ledger.audit import AuditReport, audit
from mltrail.ledger.checkpoint import NoteSigner
from mltrail.ledger.chunk import Chunk, ChunkResult
from mltrail.ledger.log import Log
from mltrail.storage.database import Database
from mltrail.storage.migrate import upgrade
from mltrail.storage.triggers import drop_statements

SIGNER = NoteSigner.from_seed("test.mltrail/chunks", bytes(range(32)))
KEYS = [SIGNER.verifier_key]
SINGLES = 19  # one append (and one signed checkpoint) each: a root at every size up to here
BATCH = 18  # then one batch: 37 events, the newest checkpoint inside a chunk of 4 or 8
ODD_IDS = ['al"ice', "back\\slash", 'x","type":"user', "jos\u00e9", "tab\there", "\u2028"]


def _draft(i: int) -> Draft:
    digest = hashlib.sha256(b"%d" % i).hexdigest() if i % 3 == 0 else None
    return Draft(
        "note" if i % 2 else "promote",
        Actor("user", ODD_IDS[i % len(ODD_IDS)] if i % 4 == 1 else f"user{i}"),
        Ref("model_version", f"m:{i}", digest=digest),  # a subject with and without content
        metadata={"outcome": "success", "seq": i + 1, "quote": ',"seq":5,"subject":{"id":"m"}'},
    )


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.connect(database_url)
    upgrade(database)
    log = Log(database, SIGNER)
    for i in range(SINGLES):
        log.append([_draft(i)])
    log.append([_draft(i) for i in range(SINGLES, SINGLES + BATCH)])
    yield database
    database.dispose()


def _tamper(db: Database, table: str, statement: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        for drop in drop_statements(db.dialect, table):
            conn.execute(sa.text(drop))
        conn.execute(sa.text(statement), params)


def _problems(report: AuditReport) -> list[tuple[str, int | None, str]]:
    return [(p.kind, p.index, p.detail) for p in report.problems]


def _same_as_one_pass(db: Database, **kwargs: Any) -> AuditReport:
    """Audit in tiny chunks with two workers, and without the C accelerator; each must agree
    with the default single pass."""
    whole = audit(db, KEYS, processes=1, **kwargs)
    with mock.patch.object(chunk_module, "_native", None):
        python = audit(db, KEYS, processes=1, **kwargs)
    assert _problems(python) == _problems(whole)
    assert (python.root, python.nodes_checked) == (whole.root, whole.nodes_checked)
    for level, processes in ((0, 1), (2, 2), (3, 1), (5, 2)):
        chunked = audit(db, KEYS, processes=processes, chunk_level=level, **kwargs)
        assert chunked.processes == processes
        assert _problems(chunked) == _problems(whole), (level, processes)
        assert (chunked.size, chunked.root, chunked.nodes_checked, chunked.checkpoints_checked) == (
            whole.size,
            whole.root,
            whole.nodes_checked,
            whole.checkpoints_checked,
        )
    return whole


def _stored_leaves(db: Database) -> list[bytes]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT event_sha256 FROM ledger_events ORDER BY seq"))
        return [merkle.leaf_hash(bytes(digest)) for (digest,) in rows]


def test_untouched_log_verifies_in_chunks_and_workers(db: Database) -> None:
    report = _same_as_one_pass(db)

    assert report.ok, [str(p) for p in report.problems]
    assert report.size == SINGLES + BATCH
    assert report.root == merkle.root_hash(_stored_leaves(db)).hex()
    assert report.checkpoints_checked == SINGLES + 1
    with db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM ledger_nodes")).scalar()
    assert report.nodes_checked == stored


@pytest.mark.parametrize(
    ("table", "statement", "kind", "index"),
    [
        (
            "ledger_events",
            "UPDATE ledger_events SET body = CAST(:b AS BLOB) WHERE seq = 9",
            "digest mismatch",
            9,
        ),
        ("ledger_events", "DELETE FROM ledger_events WHERE seq = 22", "missing leaf", 22),
        (
            "ledger_events",
            "UPDATE ledger_events SET actor_id = 'mallory' WHERE seq = 13",
            "column mismatch",
            13,
        ),
        ("ledger_events", "UPDATE ledger_events SET seq = 99 WHERE seq = 36", "missing leaf", 36),
        (
            "ledger_nodes",
            "UPDATE ledger_nodes SET hash = :z WHERE level = 4 AND idx = 0",
            "node mismatch",
            0,
        ),
        (  # below LEDGER_NODES_MIN_LEVEL nothing is stored: a row there is not ours
            "ledger_nodes",
            "INSERT INTO ledger_nodes (level, idx, hash) VALUES (1, 5, :z)",
            "node mismatch",
            10,
        ),
        (
            "ledger_nodes",
            "UPDATE ledger_nodes SET hash = :z WHERE level = 4 AND idx = 1",
            "node mismatch",
            16,
        ),
        (
            "ledger_nodes",
            "INSERT INTO ledger_nodes (level, idx, hash) VALUES (1, 40, :z)",
            "node mismatch",
            36,
        ),
        (
            "ledger_nodes",
            "INSERT INTO ledger_nodes (level, idx, hash) VALUES (9, 0, :z)",
            "node mismatch",
            0,
        ),
        (
            "ledger_checkpoints",
            "UPDATE ledger_checkpoints SET root = :z WHERE size = 7",
            "root mismatch",
            6,
        ),
    ],
    ids=[
        "changed-body",
        "deleted-event",
        "changed-column",
        "moved-last-event",
        "node-inside-chunk",
        "stray-node-below-the-floor",
        "node-above-chunks",
        "node-past-the-log",
        "node-above-the-root",
        "checkpoint-root",
    ],
)
def test_tampering_inside_a_worker_chunk_is_found_as_in_one_pass(
    db: Database, table: str, statement: str, kind: str, index: int
) -> None:
    if db.dialect == "postgresql":
        statement = statement.replace("CAST(:b AS BLOB)", ":b")
    _tamper(db, table, statement, b=b'{"action":"forged"}', z=bytes(32))

    report = _same_as_one_pass(db)

    first = report.first_problem()
    assert first is not None
    assert (first.kind, first.index) == (kind, index), [str(p) for p in report.problems]


def test_a_body_with_a_recomputed_digest_breaks_every_later_root(db: Database) -> None:
    with db.engine.connect() as conn:
        body = bytes(
            conn.execute(sa.text("SELECT body FROM ledger_events WHERE seq = 5")).scalar_one()
        )
    changed = body.replace(b'"outcome":"success"', b'"outcome":"failure"')
    _tamper(
        db,
        "ledger_events",
        "UPDATE ledger_events SET body = :b, event_sha256 = :d WHERE seq = 5",
        b=changed,
        d=hashlib.sha256(changed).digest(),
    )

    report = _same_as_one_pass(db)

    roots = [p.index for p in report.problems if p.kind == "root mismatch"]
    assert roots[0] == 5 and len(roots) >= SINGLES - 5  # sizes 6.. and the newest signed one
    assert "digest mismatch" not in {p.kind for p in report.problems}


def test_trusted_checkpoint_and_all_signatures_agree_in_chunks(db: Database) -> None:
    log = Log(db, SIGNER)
    trusted = log.checkpoint_at(11)

    report = _same_as_one_pass(db, trusted=trusted, all_signatures=True)

    assert report.ok and report.trusted_size == 11


def test_workers_are_spawned_when_this_process_runs_other_threads(db: Database) -> None:
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        assert pool.start_method(threading.active_count()) == "spawn"
        report = audit(db, KEYS, processes=2, chunk_level=3)
    finally:
        stop.set()
        helper.join()
    assert report.ok and report.processes == 2


_FORKED_AUDIT = """
import sys, threading
from mltrail.ledger import pool
from mltrail.ledger.audit import audit
from mltrail.ledger.checkpoint import NoteSigner
from mltrail.storage.database import Database
assert threading.active_count() == 1 and pool.start_method(1) == "fork"
signer = NoteSigner.from_seed("test.mltrail/chunks", bytes(range(32)))
report = audit(Database.connect(sys.argv[1]), [signer.verifier_key], processes=2, chunk_level=2)
print(report.processes, report.root, [str(p) for p in report.problems])
"""


def test_workers_are_forked_from_a_single_threaded_process(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()  # the child process opens the database itself

    done = subprocess.run(
        [sys.executable, "-c", _FORKED_AUDIT, url], capture_output=True, text=True, check=True
    )

    assert done.stdout.split() == ["2", audit(db, KEYS).root, "[]"]


def test_automatic_processes_start_at_the_threshold(db: Database) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert pool.processes_for(db, pool.PARALLEL_MIN - 1, None) == 1
    assert pool.processes_for(db, pool.PARALLEL_MIN, None) == cpus
    assert pool.processes_for(db, 10, 3) == 3
    assert audit(db, KEYS).processes == 1  # a small log stays in this process


def _die(chunk: Chunk) -> ChunkResult:
    os._exit(3)  # a worker killed mid-chunk (out of memory, a signal)


def test_a_worker_that_dies_is_a_storage_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "_check_in_worker", _die)

    with pytest.raises(StorageError, match="stopped unexpectedly"):
        audit(db, KEYS, processes=2, chunk_level=3)

    assert audit(db, KEYS).ok  # the caller's engine still works after the pool is gone
