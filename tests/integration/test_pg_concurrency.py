"""Concurrent appends to one PostgreSQL log from many processes (DESIGN §3, §5).

Eight processes open the same registry (same database, same signing key) and append at
the same moment, mixing single events and batches. The advisory lock must serialize them:
indexes stay gapless, nothing is lost, every receipt stays provable in the final log.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mltrail.events import Actor, Draft, Ref
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note
from mltrail.ledger.log import Receipt, parse_receipt
from mltrail.service import Registry

PROCESSES = 8
APPENDS = 50  # per process; every fifth is a batch of 2 to 5 events
TIMEOUT = 180


def _batch_size(n: int) -> int:
    return 2 + n // 5 % 4 if n % 5 == 4 else 1


def _append_worker(root: str, worker: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: open the registry, wait for the others, append."""
    try:
        appended: list[list[str]] = []
        with Registry.open(root, actor=Actor("service", f"worker-{worker}")) as reg:
            barrier.wait(timeout=TIMEOUT)
            for n in range(APPENDS):
                drafts = [
                    Draft(
                        "note",
                        reg.actor,
                        Ref("model", f"w{worker}-{n}-{i}"),
                        metadata={"outcome": "success", "worker": worker},
                    )
                    for i in range(_batch_size(n))
                ]
                appended.append([r.to_text() for r in reg.log.append(drafts)])
        results.put((worker, appended))
    except BaseException:
        results.put((worker, traceback.format_exc()))
        raise


def _root_of(note: str, key: str) -> Checkpoint:
    return Checkpoint.from_text(open_note(note, [key]))


@pytest.mark.slow
def test_eight_processes_append_without_gaps_or_losses(postgres_url: str, tmp_path: Path) -> None:
    with Registry.init(
        tmp_path / "registry", database=postgres_url, origin="test.mltrail/concurrent"
    ) as reg:
        root, key = str(reg.root), reg.verifier_key
        base = reg.log.size()  # the events `init` wrote

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_append_worker, args=(root, w, barrier, results))
        for w in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    try:
        outcomes = dict(results.get(timeout=TIMEOUT) for _ in workers)
    finally:
        for process in workers:
            process.join(timeout=TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    failed = {w: out for w, out in outcomes.items() if isinstance(out, str)}
    assert not failed, "\n".join(failed.values())
    assert [p.exitcode for p in workers] == [0] * PROCESSES

    batches: list[list[Receipt]] = [
        [parse_receipt(text) for text in batch]
        for appended in outcomes.values()
        for batch in appended
    ]
    receipts = [r for batch in batches for r in batch]
    expected_events = PROCESSES * sum(_batch_size(n) for n in range(APPENDS))
    assert len(receipts) == expected_events
    assert len(batches) == PROCESSES * APPENDS

    with Registry.open(root) as reg:
        final, final_note = reg.checkpoint()
        size = reg.log.size()
        stored = {e.seq: e for e in reg.events()}
        # indexes are gapless: init's events, then exactly one receipt per index
        assert size == final.size == len(stored) == base + len(receipts)
        assert sorted(r.index for r in receipts) == list(range(base, size))
        assert Counter(r.event_sha256 for r in receipts).most_common(1)[0][1] == 1
        for worker, appended in outcomes.items():
            indexes = [parse_receipt(t).index for batch in appended for t in batch]
            assert indexes == sorted(indexes), f"worker {worker} saw its appends reordered"
            assert {stored[i].metadata["worker"] for i in indexes} == {worker}
        for batch in batches:  # one append is one transaction: consecutive, one checkpoint
            assert [r.index for r in batch] == list(range(batch[0].index, batch[-1].index + 1))
            assert len({r.checkpoint for r in batch}) == 1
        for receipt in receipts:
            receipt.verify([key])
            assert stored[receipt.index].event_sha256 == receipt.event_sha256
        for note in {r.checkpoint for r in receipts}:
            then = _root_of(note, key)
            proof = reg.log.consistency_proof(then.size, final.size) if then.size < size else []
            merkle.verify_consistency(then.size, final.size, proof, then.root_hash, final.root_hash)
        assert _root_of(final_note, key).root_hash == reg.log.root()
        report = reg.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.size == size
