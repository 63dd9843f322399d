"""Artifact store throughput and memory: mltrail's put, verify and hash against `sha256sum`.

Creates a file of random bytes, warms the page cache with one read, then runs each
operation in its own child process so that its peak RSS (from ``wait4``) is its own:
``sha256sum`` (and ``openssl dgst -sha256`` when present: coreutils may not use the CPU's
SHA extensions, OpenSSL and so Python's hashlib do), a Python child that only imports
mltrail (the RSS baseline), ``hash_file`` (hashing alone), ``LocalArtifactStore.put_file``
(hash + write + fsync + commit), a re-put (no-op) and ``verify`` (re-hash of the stored
copy). Everything is deleted afterwards.

    python benchmarks/bench_artifacts.py --size-mib 64
    python benchmarks/bench_artifacts.py --size-mib 1024 --dir /var/tmp --repeat 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
TIME = Path("/usr/bin/time")


@dataclass(frozen=True)
class Result:
    """One measured operation."""

    name: str
    seconds: float
    peak_rss_mib: float
    digest: str


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table; ``--child`` runs one operation (internal)."""
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args.child)
    workdir = Path(tempfile.mkdtemp(prefix="mltrail-bench-", dir=args.dir))
    try:
        results = _run_all(workdir, args.size_mib, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _print_table(results, args.size_mib)
    digests = {r.digest for r in results if r.digest}
    if len(digests) != 1:
        print(f"digest mismatch between operations: {sorted(digests)}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--dir", default=None, help="where to create the file and the store")
    parser.add_argument("--repeat", type=int, default=1, help="runs per operation; best kept")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser


def _run_all(workdir: Path, size_mib: int, repeat: int) -> list[Result]:
    source = workdir / "artifact.bin"
    _make_file(source, size_mib)
    _hash_with_sha256sum(source)  # warm the page cache: every operation reads it hot
    store = workdir / "store"
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    results = [_best(repeat, "sha256sum", ["sha256sum", str(source)], sha256sum=True)]
    if shutil.which("openssl"):  # coreutils may lack the CPU's SHA extensions; OpenSSL uses them
        openssl = ["openssl", "dgst", "-sha256", "-r", str(source)]
        results.append(_best(repeat, "openssl dgst -sha256", openssl, sha256sum=True))
    results += [
        _best(1, "python + import mltrail (baseline)", [*me, "idle"]),
        _best(repeat, "hash_file (hash only)", [*me, "hash", str(source)]),
    ]
    put = _best(1, "LocalArtifactStore.put_file (new)", [*me, "put", str(source), str(store)])
    results.append(put)
    results.append(_best(repeat, "put_file again (no-op)", [*me, "put", str(source), str(store)]))
    results.append(
        _best(repeat, "LocalArtifactStore.verify", [*me, "verify", put.digest, str(store)])
    )
    return results


def _make_file(path: Path, size_mib: int) -> None:
    with path.open("wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(MIB))


def _hash_with_sha256sum(path: Path) -> str:
    done = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return done.stdout


def _best(repeat: int, name: str, command: list[str], *, sha256sum: bool = False) -> Result:
    runs = [_measure(name, command, sha256sum=sha256sum) for _ in range(max(repeat, 1))]
    return min(runs, key=lambda r: r.seconds)


def _measure(name: str, command: list[str], *, sha256sum: bool) -> Result:
    """Run ``command``; Python children report their own operation time (no startup).

    ``sha256sum`` and ``openssl dgst -r`` print ``<digest> <file>`` and are timed by wall
    clock. Peak RSS comes from ``/usr/bin/time``: Linux carries a parent's RSS high-water
    mark into a forked child's ``ru_maxrss``, so ``wait4`` from this Python process would
    report at least its own size (it is the fallback, an upper bound).
    """
    with tempfile.NamedTemporaryFile("r") as rss:
        timer = ["/usr/bin/time", "-f", "%M", "-o", rss.name] if TIME.exists() else []
        started = time.perf_counter()
        done = subprocess.run([*timer, *command], stdout=subprocess.PIPE, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name} failed with exit code {done.returncode}")
        peak_kib = int(rss.read().split()[-1]) if timer else _children_peak_kib()
    fields = done.stdout.split()
    digest = fields[0] if fields and fields[0] != "-" else ""
    seconds = wall if sha256sum else float(fields[1])
    return Result(name, seconds, peak_kib / 1024, digest)


def _children_peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _child(spec: list[str]) -> int:
    """One operation, timed in-process; prints ``<digest> <seconds>``."""
    from mltrail.artifacts.digest import hash_file
    from mltrail.artifacts.local import LocalArtifactStore

    operation, *params = spec
    started = time.perf_counter()
    if operation == "hash":
        digest = hash_file(Path(params[0])).digest
    elif operation == "put":
        digest = LocalArtifactStore(Path(params[1])).put_file(Path(params[0])).digest
    elif operation == "verify":
        LocalArtifactStore(Path(params[1])).verify(params[0])
        digest = params[0]
    else:  # "idle": only the imports above, for the RSS baseline
        digest = "-"
    print(digest, time.perf_counter() - started)
    return 0


def _print_table(results: list[Result], size_mib: int) -> None:
    baseline = next(r.seconds for r in results if r.name == "sha256sum")
    print(f"\n{size_mib} MiB file, page cache warm\n")
    print(f"{'operation':38} {'seconds':>8} {'MiB/s':>8} {'vs sha256sum':>13} {'peak RSS MiB':>13}")
    print("-" * 84)
    for r in results:
        if not r.digest:
            print(f"{r.name:38} {'':>8} {'':>8} {'':>13} {r.peak_rss_mib:13.1f}")
            continue
        rate = size_mib / r.seconds if r.seconds else float("inf")
        ratio = r.seconds / baseline if baseline else float("nan")
        print(f"{r.name:38} {r.seconds:8.2f} {rate:8.0f} {ratio:12.2f}x {r.peak_rss_mib:13.1f}")


if __name__ == "__main__":
    sys.exit(main())
