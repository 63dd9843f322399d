"""Ledger benchmarks (issue: the tamper-evident ledger), each beside its raw baseline.

Prints one table. Run:

    python benchmarks/bench_ledger.py                 # SQLite, 1,000,000-event log
    python benchmarks/bench_ledger.py --events 100000 # quicker
    python benchmarks/bench_ledger.py --postgres postgresql://postgres@127.0.0.1/postgres
    python benchmarks/bench_ledger.py --only verify --db /tmp/ledger.db  # verify alone; the
        # log is built once in that file and reused by later runs

Measured, side by side in one process:
- one durable append (synchronous=FULL, checkpoint signed, receipt returned): p50/p99;
- batch append events/s vs raw `executemany` of the same canonical rows into a bare table;
- verify events/s over the whole log (one process per CPU, and one process) vs raw
  `hashlib` over the same bytes;
- inclusion and consistency proofs from the big log: p50;
- append rate at the big size vs at 10,000 events;
- PostgreSQL: one durable append p50, batch events/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from mltrail.events import Actor, Draft, Ref
from mltrail.ledger.audit import audit
from mltrail.ledger.checkpoint import NoteSigner
from mltrail.ledger.log import Log
from mltrail.storage.database import Database
from mltrail.storage.migrate import upgrade

BATCH = 10_000
SIGNER = NoteSigner.from_seed("bench.mltrail/log", bytes(range(32)))


def typical_draft(i: int) -> Draft:
    """A ~600-byte event like the registry writes for a promotion."""
    return Draft(
        "promote",
        Actor("user", "mlops.alex"),
        Ref("model_version", f"model:fraud:v{i}"),
        related=(
            Ref("run", f"run-{i}", role="produced_by"),
            Ref("dataset", "ds:2025-05-01", role="used"),
        ),
        metadata={
            "from_stage": "staging",
            "to_stage": "production",
            "outcome": "success",
            "origin": {"interface": "cli"},
            "approvals": [{"by": "lead.ds", "at": "2025-05-05T13:55:00Z", "event": 39}],
            "notes": "meets SLA; reviewed offline metrics and bias report",
        },
        artifact_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fill(log: Log, target: int, drafts: list[Draft]) -> float:
    """Append batches until the log holds ``target`` events; returns events/s."""
    start, added = time.perf_counter(), 0
    while log.size() < target:
        n = min(BATCH, target - log.size())
        log.append(drafts[:n])
        added += n
    return added / (time.perf_counter() - start)


def single_appends(log: Log, count: int) -> list[float]:
    draft = typical_draft(0)
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        receipts = log.append([draft])
        _ = receipts[0]  # the receipt, with its proof
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def raw_executemany(path: Path, rows: list[tuple[int, str, bytes, bytes]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE raw (seq INTEGER PRIMARY KEY, event_id TEXT, digest BLOB, body BLOB)"
    )
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", rows[i : i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def raw_hash_rate(db_path: Path) -> float:
    conn = sqlite3.connect(db_path)
    start, n = time.perf_counter(), 0
    sha = hashlib.sha256
    for (body,) in conn.execute("SELECT body FROM ledger_events ORDER BY seq"):
        sha(body).digest()
        n += 1
    conn.close()
    return n / (time.perf_counter() - start)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def sqlite_suite(events: int, rows: list[list[str]]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mltrail-bench-"))
    db_path = tmp / "ledger.db"
    db = Database.connect(f"sqlite:///{db_path}")
    upgrade(db)
    log = Log(db, SIGNER)
    drafts = [typical_draft(i) for i in range(BATCH)]

    single = single_appends(log, 300)
    rows.append(
        [
            "SQLite: one durable append + signed checkpoint + receipt",
            f"p50 {percentile(single, 0.5):.3f} ms",
            f"p99 {percentile(single, 0.99):.3f} ms",
            "target p50 <= 1 ms",
        ]
    )

    rate_small = fill(log, 10_000, drafts)
    canonical = [
        (
            i,
            str(uuid.uuid4()),
            hashlib.sha256(
                d.seal(
                    event_id="x", seq=i, timestamp="2025-05-05T14:03:00.123456Z"
                ).canonical_bytes()
            ).digest(),
            d.seal(event_id="x", seq=i, timestamp="2025-05-05T14:03:00.123456Z").canonical_bytes(),
        )
        for i, d in enumerate(drafts * 5)
    ]
    raw_rate = raw_executemany(tmp / "raw.db", canonical)
    batch_rate = fill(log, 10_000 + 50_000, drafts)
    rows.append(
        [
            "SQLite: batch append (10k per transaction)",
            f"{batch_rate:,.0f} events/s",
            f"raw executemany {raw_rate:,.0f}/s ({raw_rate / batch_rate:.1f}x)",
            "target >= 50,000/s, within 3x",
        ]
    )

    fill(log, events, drafts)
    rate_big = fill(log, events + 50_000, drafts)
    rows.append(
        [
            f"SQLite: append rate at {events + 50_000:,} vs at 10,000",
            f"{rate_big:,.0f} vs {rate_small:,.0f} events/s",
            f"{(rate_big / rate_small - 1) * 100:+.0f}%",
            "target within 25%",
        ]
    )

    size = log.size()
    incl = timed(lambda: log.inclusion_proof(size // 3, size), 500)
    cons = timed(lambda: log.consistency_proof(size // 3, size), 500)
    rows.append(
        [
            f"SQLite: proofs from a {size:,}-event log",
            f"inclusion p50 {percentile(incl, 0.5):.3f} ms",
            f"consistency p50 {percentile(cons, 0.5):.3f} ms",
            "target p50 <= 1 ms",
        ]
    )

    verify_rows(db, db_path, rows)
    db.dispose()


def verify_rows(db: Database, db_path: Path, rows: list[list[str]]) -> None:
    """Verify the whole log with automatic processes, then in one process."""
    raw = raw_hash_rate(db_path)
    for processes in (None, 1):
        t0 = time.perf_counter()
        report = audit(db, [SIGNER.verifier_key], processes=processes)
        verify_rate = report.size / (time.perf_counter() - t0)
        assert report.ok, report.problems[:3]
        rows.append(
            [
                f"SQLite: verify {report.size:,} events (digests, columns, tree, nodes, "
                f"checkpoints), {report.processes} process{'es' if report.processes > 1 else ''}",
                f"{verify_rate:,.0f} events/s ({report.size / verify_rate:.1f} s)",
                f"raw hashlib over the bytes {raw:,.0f}/s ({verify_rate / raw:.2f}x)",
                "target >= 200,000/s",
            ]
        )


def verify_suite(events: int, db_path: Path | None, rows: list[list[str]]) -> None:
    """Only the verify rows, on a log kept in ``db_path`` (built there once if smaller)."""
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="mltrail-bench-")) / "ledger.db"
    db = Database.connect(f"sqlite:///{db_path}")
    upgrade(db)
    log = Log(db, SIGNER)
    if log.size() == 0:
        single_appends(log, 300)  # a signed checkpoint at each of the first sizes
    fill(log, events, [typical_draft(i) for i in range(BATCH)])
    verify_rows(db, db_path, rows)
    db.dispose()


def postgres_suite(url: str, rows: list[list[str]]) -> None:
    name = f"mltrail_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        db = Database.connect(url.rsplit("/", 1)[0] + "/" + name)
        upgrade(db)
        log = Log(db, SIGNER)
        single = single_appends(log, 300)
        rows.append(
            [
                "PostgreSQL: one durable append + checkpoint + receipt",
                f"p50 {percentile(single, 0.5):.3f} ms",
                f"p99 {percentile(single, 0.99):.3f} ms",
                "target p50 <= 3 ms",
            ]
        )
        drafts = [typical_draft(i) for i in range(BATCH)]
        rate = fill(log, 300 + 50_000, drafts)
        rows.append(
            [
                "PostgreSQL: batch append (10k per transaction)",
                f"{rate:,.0f} events/s",
                "",
                "target >= 20,000/s",
            ]
        )
        db.dispose()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the big log")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MLTRAIL_BENCH_POSTGRES_URL"),
        help="PostgreSQL admin URL (creates and drops its own database)",
    )
    parser.add_argument(
        "--only", choices=["verify"], help="run only these rows (the others take minutes)"
    )
    parser.add_argument(
        "--db", type=Path, help="with --only verify: keep the SQLite log in this file and reuse it"
    )
    args = parser.parse_args(argv)
    rows: list[list[str]] = []
    if args.only == "verify":
        verify_suite(args.events, args.db, rows)
    else:
        sqlite_suite(args.events, rows)
        if args.postgres:
            postgres_suite(args.postgres, rows)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
