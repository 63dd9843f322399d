"""Tampering with the ledger behind mltrail's back is refused or caught (DESIGN §3).

Each test plays an attacker with raw database access on SQLite and on PostgreSQL: it drops
the refusal triggers (`storage.triggers.drop_statements`), changes the ledger tables with
plain SQL, and checks that `verify` fails naming the expected problem and index.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from pgserver import admin_url

from mltrail.errors import VerificationError
from mltrail.events import Actor, Draft, Ref
from mltrail.ledger import merkle
from mltrail.ledger.audit import AuditReport, Problem
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, sign_note
from mltrail.ledger.witness import Witness
from mltrail.service import Registry
from mltrail.storage.triggers import drop_statements

EVENTS = 17  # init's events, then single appends: one signed checkpoint per size
ACTOR = Actor("user", "alice")


def _append_notes(reg: Registry, count: int, *, start: int = 0) -> None:
    for i in range(start, start + count):
        draft = Draft("note", ACTOR, Ref("model", f"m{i}"), metadata={"outcome": "success"})
        reg.log.append([draft])


@pytest.fixture
def reg(registry: Registry) -> Registry:
    """A registry on each backend holding EVENTS events, each with its own checkpoint."""
    _append_notes(registry, EVENTS - registry.log.size())
    assert registry.log.size() == EVENTS
    assert registry.verify().ok
    return registry


def _tamper(reg: Registry, *statements: tuple[str, dict[str, Any]], drop: tuple[str, ...]) -> None:
    """Run ``statements`` as an attacker: drop ``drop``'s triggers first, in one transaction."""
    with reg.db.engine.begin() as conn:
        for table in drop:
            for statement in drop_statements(reg.db.dialect, table):
                conn.execute(sa.text(statement))
        for statement, params in statements:
            conn.execute(sa.text(statement), params)


def _row(reg: Registry, seq: int) -> sa.Row[Any]:
    with reg.db.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT body, event_sha256 FROM ledger_events WHERE seq = :s"), {"s": seq}
        ).one()


def _kinds(report: AuditReport) -> set[str]:
    return {p.kind for p in report.problems}


def _first(report: AuditReport, kind: str) -> Problem:
    return next(p for p in report.problems if p.kind == kind)


def _failed(report: AuditReport, kind: str, index: int | None) -> None:
    """The audit failed, and the problem it names first is ``kind`` at ``index``."""
    assert not report.ok
    first = report.first_problem()
    assert first is not None
    assert (first.kind, first.index) == (kind, index), [str(p) for p in report.problems]
    with pytest.raises(VerificationError, match=kind):
        report.raise_for_problems()


# -- (a) a changed event ----------------------------------------------------------------------


def test_changed_event_bytes_are_a_digest_mismatch(reg: Registry) -> None:
    body = bytes(_row(reg, 5).body)
    changed = body.replace(b'"outcome":"success"', b'"outcome":"failure"')
    assert changed != body
    _tamper(
        reg,
        ("UPDATE ledger_events SET body = :b WHERE seq = 5", {"b": changed}),
        drop=("ledger_events",),
    )

    report = reg.verify()

    _failed(report, "digest mismatch", 5)
    assert [p.index for p in report.problems if p.kind == "digest mismatch"] == [5]


def test_changed_event_with_a_matching_digest_breaks_the_signed_roots(reg: Registry) -> None:
    body = bytes(_row(reg, 5).body)
    changed = body.replace(b'"outcome":"success"', b'"outcome":"failure"')
    _tamper(
        reg,
        (
            "UPDATE ledger_events SET body = :b, event_sha256 = :d WHERE seq = 5",
            {"b": changed, "d": hashlib.sha256(changed).digest()},
        ),
        drop=("ledger_events",),
    )

    report = reg.verify()

    _failed(report, "root mismatch", 5)  # the checkpoint of size 6 is the first one that differs
    assert "digest mismatch" not in _kinds(report)
    assert any("newest signed checkpoint" in p.detail for p in report.problems)


# -- (b) a deleted event ----------------------------------------------------------------------


def test_deleted_event_is_a_missing_leaf(reg: Registry) -> None:
    _tamper(reg, ("DELETE FROM ledger_events WHERE seq = 5", {}), drop=("ledger_events",))

    report = reg.verify()

    _failed(report, "missing leaf", 5)
    assert [p.index for p in report.problems if p.kind == "missing leaf"] == [5]
    assert report.size == EVENTS  # the gap is counted, the tail is still there


# -- (c) a forged event -----------------------------------------------------------------------


def test_forged_event_at_the_next_index_is_covered_by_no_signature(reg: Registry) -> None:
    draft = Draft(
        "promote", Actor("user", "mallory"), Ref("model", "fraud"), metadata={"outcome": "success"}
    )
    event = draft.seal(
        event_id=str(uuid.uuid4()), seq=EVENTS, timestamp="2024-05-15T09:00:00.000000Z"
    )
    body = event.canonical_bytes()
    row = {
        "seq": EVENTS,
        "event_id": event.event_id,
        "event_sha256": hashlib.sha256(body).digest(),
        "body": body,
        "action": event.action,
        "actor_id": event.actor.id,
        "subject_type": event.subject.type,
        "subject_id": event.subject.id,
        "ts": event.timestamp,
    }
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    # Inserting is allowed (the log is append-only), so no trigger stands in the way.
    _tamper(reg, (f"INSERT INTO ledger_events ({columns}) VALUES ({values})", row), drop=())

    report = reg.verify()

    _failed(report, "unsigned events", EVENTS)
    assert _kinds(report) == {"unsigned events"}  # well-formed: digest and columns hold
    assert reg.log.event(EVENTS).event_sha256 == event.event_sha256


# -- (d) two events swapped -------------------------------------------------------------------


def test_swapped_events_disagree_with_their_rows(reg: Registry) -> None:
    three, six = _row(reg, 3), _row(reg, 6)
    _tamper(
        reg,
        (
            "UPDATE ledger_events SET body = :b, event_sha256 = :d WHERE seq = 3",
            {"b": six.body, "d": six.event_sha256},
        ),
        (
            "UPDATE ledger_events SET body = :b, event_sha256 = :d WHERE seq = 6",
            {"b": three.body, "d": three.event_sha256},
        ),
        drop=("ledger_events",),
    )

    report = reg.verify()

    _failed(report, "column mismatch", 3)  # each body names another seq than its row
    assert [p.index for p in report.problems if p.kind == "column mismatch"] == [3, 6]
    assert _first(report, "root mismatch").index == 3


# -- (e) the tail truncated -------------------------------------------------------------------


def test_truncated_tail_is_caught_by_the_newest_checkpoint(reg: Registry) -> None:
    _tamper(reg, ("DELETE FROM ledger_events WHERE seq >= 9", {}), drop=("ledger_events",))

    report = reg.verify()

    _failed(report, "truncated", 9)
    assert report.size == 9


def test_truncated_tail_with_its_checkpoints_and_nodes_needs_a_trusted_checkpoint(
    reg: Registry, tmp_path: Path
) -> None:
    _, trusted = reg.checkpoint()
    witness = Witness.create(
        tmp_path / "witness", name="test.mltrail/witness", log_key=reg.verifier_key
    )
    witness.accept(trusted, [])
    keep = 7
    _tamper(
        reg,
        ("DELETE FROM ledger_events WHERE seq >= :n", {"n": keep}),
        ("DELETE FROM ledger_checkpoints WHERE size > :n", {"n": keep}),
        # every stored subtree that covers a removed leaf: (idx + 1) * 2^level > keep
        ("DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > :n", {"n": keep}),
        drop=("ledger_events", "ledger_checkpoints", "ledger_nodes"),
    )

    alone = reg.verify()
    with_note = reg.verify(trusted=trusted)
    with_witness = reg.verify(trusted=witness.trusted_note())

    assert alone.ok, [str(p) for p in alone.problems]  # a consistent, smaller log
    assert alone.size == keep
    for report in (with_note, with_witness):
        _failed(report, "rollback", keep)
        assert report.trusted_size == EVENTS
    with pytest.raises(VerificationError, match="rollback"):
        witness.accept(reg.checkpoint()[1], [])


# -- (f) the whole database replaced by an older copy -----------------------------------------


@contextlib.contextmanager
def _older_copy(reg: Registry, url: str, tmp_path: Path) -> Iterator[None]:
    """Snapshot the database now; on exit, put the snapshot back in place of the database."""
    reg.close()
    if url.startswith("sqlite"):
        live = Path(sa.engine.make_url(url).database or "")
        copy = tmp_path / "older.db"
        with (
            contextlib.closing(sqlite3.connect(live)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
        yield
        reg.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(copy, live)
        return
    name = sa.engine.make_url(url).database
    older = f"{name}_older"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{older}" TEMPLATE "{name}"')
    try:
        yield
        reg.close()
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{older}"')
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{older}" WITH (FORCE)')


def test_older_copy_of_the_database_is_caught_as_a_rollback(
    reg: Registry, database_url: str, tmp_path: Path
) -> None:
    witness = Witness.create(
        tmp_path / "witness", name="test.mltrail/witness", log_key=reg.verifier_key
    )
    witness.accept(reg.checkpoint()[1], [])
    with _older_copy(reg, database_url, tmp_path):
        _append_notes(reg, 5, start=EVENTS)
        newer, trusted = reg.checkpoint()
        proof = reg.prove_consistency(EVENTS, newer.size)["proof"]
        witness.accept(trusted, [bytes.fromhex(h) for h in proof])
        assert reg.verify(trusted=trusted).ok

    with Registry.open(reg.root) as older:
        alone = older.verify()
        with_note = older.verify(trusted=trusted)
        with_witness = older.verify(trusted=witness.trusted_note())
        old_note = older.checkpoint()[1]

    assert alone.ok and alone.size == EVENTS  # the copy is a genuine, older log
    for report in (with_note, with_witness):
        _failed(report, "rollback", EVENTS)
        assert report.trusted_size == EVENTS + 5
    with pytest.raises(VerificationError, match="rollback"):
        witness.accept(old_note, [])


# -- (g) a checkpoint signed with another key -------------------------------------------------


def test_checkpoint_at_a_new_size_signed_by_another_key_is_a_bad_signature(
    reg: Registry,
) -> None:
    newest, _ = reg.checkpoint()
    mallory = NoteSigner.from_seed(newest.origin, bytes(range(32)))  # same name, other key
    forged = Checkpoint(newest.origin, newest.size + 1, newest.root_hash)
    _tamper(
        reg,
        (
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES (:s, :r, :n, :t)",
            {
                "s": forged.size,
                "r": forged.root_hash,
                "n": sign_note(forged.to_text(), mallory),
                "t": "2024-05-15T09:00:00.000000Z",
            },
        ),
        drop=(),
    )

    report = reg.verify()

    _failed(report, "bad signature", None)
    assert "newest checkpoint" in _first(report, "bad signature").detail


def test_newest_checkpoint_re_signed_by_another_key_is_a_bad_signature(reg: Registry) -> None:
    newest, _ = reg.checkpoint()
    mallory = NoteSigner.generate(newest.origin)
    _tamper(
        reg,
        (
            "UPDATE ledger_checkpoints SET note = :n WHERE size = :s",
            {"n": sign_note(newest.to_text(), mallory), "s": newest.size},
        ),
        drop=("ledger_checkpoints",),
    )

    report = reg.verify()

    _failed(report, "bad signature", None)
    assert _kinds(report) == {"bad signature"}


# -- (h) a changed query column ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "promote"),
        ("actor_id", "mallory"),
        ("subject_type", "dataset"),
        ("subject_id", "m-other"),
        ("ts", "2020-01-01T00:00:00.000000Z"),
        ("event_id", "0190f000-0000-7000-8000-000000000000"),
    ],
    ids=["action", "actor_id", "subject_type", "subject_id", "ts", "event_id"],
)
def test_changed_query_column_is_a_column_mismatch(reg: Registry, column: str, value: str) -> None:
    _tamper(
        reg,
        (f"UPDATE ledger_events SET {column} = :v WHERE seq = 5", {"v": value}),
        drop=("ledger_events",),
    )

    report = reg.verify()

    _failed(report, "column mismatch", 5)
    assert _kinds(report) == {"column mismatch"}  # the bytes, digest and tree still hold


# -- (i) a changed Merkle node ----------------------------------------------------------------


def test_changed_merkle_node_is_a_node_mismatch(reg: Registry) -> None:
    _tamper(
        reg,
        ("UPDATE ledger_nodes SET hash = :h WHERE level = 4 AND idx = 0", {"h": bytes(32)}),
        drop=("ledger_nodes",),
    )

    report = reg.verify()

    _failed(report, "node mismatch", 0)  # subtree (4, 0) starts at leaf 0
    assert _kinds(report) == {"node mismatch"}
    assert "(4, 0)" in report.problems[0].detail


def test_a_stored_node_below_the_stored_levels_is_a_node_mismatch(reg: Registry) -> None:
    # Subtrees below level 4 are rehashed from the leaves, never read from the table; one
    # found there was put there by someone else, even with the right hash.
    right = merkle.root_hash([merkle.leaf_hash(_row(reg, i).event_sha256) for i in (4, 5, 6, 7)])
    _tamper(
        reg,
        ("INSERT INTO ledger_nodes (level, idx, hash) VALUES (2, 1, :h)", {"h": right}),
        drop=(),
    )

    report = reg.verify()

    _failed(report, "node mismatch", 4)
    assert _kinds(report) == {"node mismatch"}
    assert reg.log.inclusion_proof(5) == merkle.inclusion_proof(
        [merkle.leaf_hash(_row(reg, i).event_sha256) for i in range(EVENTS)], 5
    )


# -- the database refuses changes -------------------------------------------------------------

_CHANGES = {
    "ledger_events": (
        "UPDATE ledger_events SET action = 'promote' WHERE seq = 3",
        "DELETE FROM ledger_events WHERE seq = 3",
    ),
    "ledger_nodes": (
        "UPDATE ledger_nodes SET hash = :zero WHERE level = 4 AND idx = 0",
        "DELETE FROM ledger_nodes WHERE level = 4 AND idx = 0",
    ),
    "ledger_checkpoints": (
        "UPDATE ledger_checkpoints SET note = 'forged' WHERE size = 3",
        "DELETE FROM ledger_checkpoints WHERE size = 3",
    ),
    "ledger_meta": (
        "UPDATE ledger_meta SET value = 'forged' WHERE key = 'tamper-test'",
        "DELETE FROM ledger_meta WHERE key = 'tamper-test'",
    ),
}


def _ledger_rows(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    with reg.db.engine.connect() as conn:
        return {
            table: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1, 2"))]
            for table in _CHANGES
        }


@pytest.mark.parametrize("table", list(_CHANGES), ids=list(_CHANGES))
@pytest.mark.parametrize(
    "operation", ["update", "delete", "truncate"], ids=["update", "delete", "truncate"]
)
def test_triggers_refuse_changes_to_ledger_tables(
    reg: Registry, table: str, operation: str
) -> None:
    with reg.db.engine.begin() as conn:  # inserting is allowed: give ledger_meta a row too
        conn.execute(sa.text("INSERT INTO ledger_meta (key, value) VALUES ('tamper-test', 'v')"))
    before = _ledger_rows(reg)
    assert all(before.values())
    update, delete = _CHANGES[table]
    # SQLite has no TRUNCATE; its stand-in is an unqualified DELETE (the truncate optimization).
    truncate = f"TRUNCATE {table}" if reg.db.dialect == "postgresql" else f"DELETE FROM {table}"
    statement = {"update": update, "delete": delete, "truncate": truncate}[operation]
    params = {"zero": bytes(32)} if ":zero" in statement else {}

    with pytest.raises(sa.exc.DBAPIError, match="append-only"), reg.db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)

    assert _ledger_rows(reg) == before
    assert reg.verify().ok
