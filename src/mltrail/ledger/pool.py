"""Checking the chunks of a log in this process or in worker processes, results in order.

`audit` hands every chunk of a big log to `check_chunks`. Each worker opens its own
connection from the database URL (a SQLite file or a PostgreSQL server; an in-memory SQLite
database exists only in this process, so it is always checked here) and returns plain
results: chunk hashes and problems, never rows. A log below `PARALLEL_MIN` events is checked
in this process, where starting workers would cost more than it saves.

>>> from mltrail.storage.database import Database
>>> processes_for(Database.connect("sqlite://"), size=10**7, requested=4)
1
>>> start_method(threads=1), start_method(threads=3)
('fork', 'spawn')
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mltrail.errors import StorageError
from mltrail.ledger.chunk import Chunk, ChunkResult, check_chunk
from mltrail.storage.database import Database

__all__ = ["PARALLEL_MIN", "check_chunks", "processes_for", "start_method"]

PARALLEL_MIN = 200_000
"""Logs with fewer events are checked in one process (workers start in tens of ms when
forked, and in about a second when spawned)."""

_worker_db: Database | None = None  # one per worker process, opened by `_open_worker`


def processes_for(db: Database, size: int, requested: int | None) -> int:
    """How many processes check a log of ``size`` events: ``requested``, or one per CPU.

    Automatic (``requested=None``) uses workers only from `PARALLEL_MIN` events on; an
    in-memory SQLite database is always checked by this process alone.
    """
    if db.dialect == "sqlite" and db.engine.url.database in (None, "", ":memory:"):
        return 1
    if requested is not None:
        return max(1, requested)
    if size < PARALLEL_MIN:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_method(threads: int) -> str:
    """``fork`` for a single-threaded process on Linux (the CLI), ``spawn`` otherwise.

    Forking starts workers at once with every module already imported, but a thread holding
    a lock at that instant would leave the child's copy locked forever; a process that runs
    other threads (an API server), or runs on macOS (where system libraries do not survive
    a fork), pays for fresh interpreters instead: about a second each.
    """
    return "fork" if threads == 1 and sys.platform == "linux" else "spawn"


def check_chunks(db: Database, chunks: Sequence[Chunk], processes: int) -> Iterator[ChunkResult]:
    """Check ``chunks``, in ``processes`` processes; yields results in chunk order.

    With one process, each chunk is read in its own transaction of ``db``. With more, each
    worker reads through its own engine; before forking, ``db``'s idle connections are
    closed, so that no worker inherits one (SQLite and libpq forbid using a connection
    across ``fork``).

    Raises:
        StorageError: a worker could not read the database, or died (raised in order).
    """
    if processes <= 1:
        for chunk in chunks:
            with db.read() as conn:
                yield check_chunk(conn, chunk)
        return
    url = db.engine.url.render_as_string(hide_password=False)
    method = start_method(threading.active_count())
    if method == "fork":
        db.engine.dispose()
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(min(processes, len(chunks)), context, _open_worker, (url,))
    try:
        yield from pool.map(_check_in_worker, chunks)
    except BrokenProcessPool as exc:
        raise StorageError(
            f"a process checking the log stopped unexpectedly: {exc}",
            hint="run verify again; if a worker keeps dying, look at the machine's memory "
            "and disk (the kernel log says why a process was killed)",
        ) from exc
    finally:  # on an early exit, chunks not yet started are dropped, not checked
        pool.shutdown(wait=True, cancel_futures=True)


def _open_worker(url: str) -> None:
    global _worker_db
    _worker_db = Database.connect(url)
    multiprocessing.util.Finalize(_worker_db, _worker_db.dispose, exitpriority=0)


def _check_in_worker(chunk: Chunk) -> ChunkResult:
    assert _worker_db is not None, "the pool initializer opens the database"
    with _worker_db.read() as conn:
        return check_chunk(conn, chunk)
