"""Crash safety on SQLite: an append is durable once it returns (DESIGN §5).

A child process appends in a loop and records each receipt after `append` returns; the
parent kills it with SIGKILL at random moments, many times. Every recorded receipt must
name an event that is still in the log with the same digest, and the log must audit clean.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from mltrail.ledger.audit import audit
from mltrail.ledger.keys import load_signer
from mltrail.ledger.log import Log
from mltrail.service import Registry
from mltrail.storage.database import Database

KILLS = 50
WARM = 3  # children already imported and waiting, so a kill costs its run time, not imports

# The child imports only the ledger (not the whole service) to start fast, says "ready",
# waits for "go", then appends single events and small batches until it is killed. A
# receipt line is written, flushed and fsynced only after `append` has returned.
CHILD = """
import os, random, sys
from mltrail.events import Actor, Draft, Ref
from mltrail.ledger.keys import load_signer
from mltrail.ledger.log import Log
from mltrail.storage.database import Database

url, key_file, origin, receipts = sys.argv[1:5]
print("ready", flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(0)
log = Log(Database.connect(url), load_signer(key_file), origin=origin)
actor = Actor("service", f"crash-{os.getpid()}")
with open(receipts, "a") as out:
    n = 0
    while True:
        size = random.choice((1, 1, 1, 2, 3, 8))
        drafts = [Draft("note", actor, Ref("model", f"m{n + i}"), metadata={"outcome": "success"})
                  for i in range(size)]
        for receipt in log.append(drafts):
            out.write(f"{receipt.index} {receipt.event_sha256}\\n")
            out.flush()
            os.fsync(out.fileno())
        n += size
"""


def _start(script: Path, args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _recorded(path: Path) -> dict[int, str]:
    """Complete receipt lines only: a kill may cut the last line short."""
    recorded: dict[int, str] = {}
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            index, digest = line.split()
            assert recorded.setdefault(int(index), digest) == digest, f"index {index} reused"
    return recorded


@pytest.mark.slow
def test_receipts_written_before_a_sigkill_survive_it(tmp_path: Path) -> None:
    reg = Registry.init(tmp_path / "registry", origin="test.mltrail/crash")
    url = reg.settings.database
    key_file = reg.settings.resolve(reg.root, reg.settings.key_file)
    origin = reg.settings.origin
    reg.close()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    receipts = tmp_path / "receipts.txt"
    args = [url, str(key_file), origin, str(receipts)]
    seed = random.randrange(2**32)  # printed on failure, so a bad run can be replayed
    rng = random.Random(seed)

    pool: deque[subprocess.Popen[str]] = deque(_start(script, args) for _ in range(WARM))
    outcomes = []
    try:
        for _ in range(KILLS):
            child = pool.popleft()
            pool.append(_start(script, args))
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "ready"
            child.stdin.write("go\n")
            child.stdin.flush()
            time.sleep(rng.uniform(0.05, 0.4))
            child.kill()  # SIGKILL: no cleanup, no atexit, no rollback by the child
            outcomes.append(child.wait(timeout=30))
            child.stdin.close()
            child.stdout.close()
    finally:
        for waiting in pool:
            waiting.kill()
            waiting.wait(timeout=30)
            for stream in (waiting.stdin, waiting.stdout):
                if stream is not None:
                    stream.close()

    # every child was killed, not ended by an error of its own (that would hide a crash bug)
    assert outcomes == [-9] * KILLS, f"seed {seed}"
    recorded = _recorded(receipts)
    assert len(recorded) >= KILLS, f"only {len(recorded)} appends returned; seed {seed}"
    db = Database.connect(url)
    try:
        log = Log(db, load_signer(key_file), origin=origin)
        assert log.size() > max(recorded)
        for index, digest in sorted(recorded.items()):
            assert log.event(index).event_sha256 == digest, f"event {index} lost; seed {seed}"
        report = audit(db, [log.verifier_key])
        assert report.ok, [str(p) for p in report.problems]
        assert report.size == log.size()
    finally:
        db.dispose()
