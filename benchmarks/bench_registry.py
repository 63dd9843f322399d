"""Registry benchmarks (issue: the registry traced both ways), beside MLflow in-process.

Prints one table. Run:

    pip install -e ".[bench]"          # MLflow >= 3.17 for the side-by-side baseline
    python benchmarks/bench_registry.py                         # moderate sizes
    python benchmarks/bench_registry.py --events 1000000 --predictions 10000000   # issue sizes
    python benchmarks/bench_registry.py --postgres postgresql://postgres@127.0.0.1/postgres
    python benchmarks/bench_registry.py --only ingest --postgres URL   # prediction ingest only

Measured in one process, each beside its baseline:
- register a model version (files stored, manifest, event, projections, signed checkpoint)
  vs MLflow `create_model_version` on SQLite;
- resolve the production version vs MLflow `get_model_version_by_alias`;
- full backward trace of a prediction vs MLflow's alias -> version -> run walk;
- impact query dataset -> deployments -> prediction counts;
- prediction ingest (SQLite, and PostgreSQL when given).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from mltrail.artifacts.manifest import Manifest
from mltrail.canonical import canonicalize
from mltrail.events import Actor, Draft, Ref
from mltrail.service import Registry, VersionSpec


class _Results(list[tuple[str, str, str, str]]):
    """The final table's rows; each is also shown as soon as it is measured."""

    def append(self, row: tuple[str, str, str, str]) -> None:
        super().append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)


RESULTS = _Results()


def p50(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def setup_registry(root: Path, database: str | None = None) -> Registry:
    reg: Registry = Registry.init(
        root, database=database, origin="bench.mltrail/registry", actor=Actor("user", "bench")
    )
    data = root.parent / "data"
    data.mkdir(exist_ok=True)
    (data / "train.csv").write_text("a,b\n1,2\n" * 1000)
    reg.register_dataset("DS:bench", name="bench", version="1", path=data)
    reg.register_code(repository="git@example.com:bench.git", commit="c1a2b" + "0" * 35)
    reg.register_run(
        "R-bench",
        params={"lr": 0.01},
        metrics={"auc": 0.9},
        datasets=["DS:bench"],
        commit="c1a2b" + "0" * 35,
    )
    reg.register_model("bench")
    return reg


def model_dir(root: Path, i: int) -> Path:
    folder = root / f"model-{i}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.json").write_text(f'{{"w": [{i}, 1, 2]}}')
    (folder / "score.py").write_text("def predict(x):\n    return {'score': 0.5}\n")
    return folder


BULK = 100  # versions to an `add_versions` call: one commit and one signed checkpoint each


def bench_versions(reg: Registry, tmp: Path, count: int) -> tuple[float, float, float]:
    """(versions/s from stored manifests, one `add_version` call each; the same through
    `add_versions`, BULK to a call; versions/s from directories whose files are stored
    durably on the way). MLflow's create_model_version records a source URI and copies
    nothing, so the first two are the like-for-like comparison. The batches go to a second,
    fresh registry: each registration then starts from the same empty model as the first
    measurement, and the later measurements see the same catalog as before."""
    manifests = []
    for i in range(count):
        found = Manifest.from_directory(model_dir(tmp / "stored", i), reg.store)
        manifests.append(reg.store.put_bytes(canonicalize(found.to_dict())).digest)
    t0 = time.perf_counter()
    for digest in manifests:
        reg.add_version("bench", manifest=digest, run="R-bench", entrypoint="score.py:predict")
    stored_rate = count / (time.perf_counter() - t0)
    bulk = setup_registry(tmp / "bulk-registry")
    specs = []
    bulk_count = max(count, 10 * BULK)  # ten calls at least: one is too few to time
    for i in range(bulk_count):
        found = Manifest.from_directory(model_dir(tmp / "stored", i), bulk.store)
        digest = bulk.store.put_bytes(canonicalize(found.to_dict())).digest
        specs.append(VersionSpec(manifest=digest, run="R-bench", entrypoint="score.py:predict"))
    t0 = time.perf_counter()
    for start in range(0, bulk_count, BULK):
        bulk.add_versions("bench", specs[start : start + BULK])
    bulk_rate = bulk_count / (time.perf_counter() - t0)
    bulk.close()
    dirs = [model_dir(tmp / "models", count + i) for i in range(count)]
    t0 = time.perf_counter()
    for folder in dirs:
        reg.add_version("bench", folder, run="R-bench", entrypoint="score.py:predict")
    return stored_rate, bulk_rate, count / (time.perf_counter() - t0)


def mlflow_suite(tmp: Path, count: int) -> dict[str, float]:
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        return {}
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model("bench")
    experiment = client.create_experiment("bench", artifact_location=(tmp / "mlruns").as_uri())
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "lr", 0.01)
    t0 = time.perf_counter()
    for i in range(count):
        client.create_model_version(
            "bench", source=f"{run.info.artifact_uri}/model-{i}", run_id=run.info.run_id
        )
    rate = count / (time.perf_counter() - t0)
    client.set_registered_model_alias("bench", "production", "1")
    resolve = p50(lambda: client.get_model_version_by_alias("bench", "production"), 300)

    def walk() -> None:
        version = client.get_model_version_by_alias("bench", "production")
        client.get_run(version.run_id)

    return {
        "create_rate": rate,
        "resolve_ms": resolve,
        "walk_ms": p50(walk, 200),
        "version": mlflow.__version__,
    }


def fill_events(reg: Registry, target: int) -> None:
    """Grow the log to ``target`` events with realistic access events (no projections)."""
    draft = Draft(
        "access",
        Actor("user", "bench"),
        Ref("model_version", "model:bench:v1"),
        metadata={"outcome": "success", "origin": {"interface": "sdk"}, "access": "view"},
    )
    while reg.log.size() < target:
        reg.log.append([draft] * min(10_000, target - reg.log.size()))


def ingest(reg: Registry, total: int, deployments: list[str]) -> float:
    """Predictions/s through `log_predictions`, in batches of 100,000 records.

    Each batch's record dicts are built before its call and outside the timing: they are
    the client's work (about 0.6 µs a record here), not the registry's.
    """
    elapsed, done = 0.0, 0
    while done < total:
        n = min(100_000, total - done)
        dep = deployments[(done // 100_000) % len(deployments)]
        records = [
            {
                "prediction_id": f"P{done + i}",
                "deployment": dep,
                "input_hmac": "0" * 64,
                "output": {"score": 0.5},
            }
            for i in range(n)
        ]
        t0 = time.perf_counter()
        reg.log_predictions(records, keep_inputs=False)
        elapsed += time.perf_counter() - t0
        done += n
    return total / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("MLTRAIL_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--only", choices=["ingest"], help="run only this part (ingest: SQLite and PostgreSQL)"
    )
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mltrail-bench-"))

    if args.only == "ingest":
        sqlite_ingest(tmp, args.predictions)
    else:
        registry_suite(tmp, args)
    if args.postgres:
        postgres_ingest(args.postgres, tmp, min(args.predictions, 1_000_000))
    widths = [max(len(r[i]) for r in RESULTS) for i in range(4)]
    for row in RESULTS:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def registry_suite(tmp: Path, args: argparse.Namespace) -> None:
    """Everything but the PostgreSQL ingest, on one SQLite registry."""
    reg = setup_registry(tmp / "registry")
    ours, bulk, from_dirs = bench_versions(reg, tmp, args.versions)
    ml = mlflow_suite(tmp, args.versions)
    base = f"MLflow {ml['version']}: {ml['create_rate']:,.0f}/s" if ml else "MLflow not installed"
    ratio = f" ({ours / ml['create_rate']:.1f}x)" if ml else ""
    RESULTS.append(
        (
            "register a model version (stored manifest)",
            f"{ours:,.0f} versions/s{ratio}",
            base,
            ">= 10x MLflow",
        )
    )
    RESULTS.append(
        ("  same, from a directory (2 files fsynced)", f"{from_dirs:,.0f} versions/s", "", "")
    )
    ratio = f" ({bulk / ml['create_rate']:.1f}x)" if ml else ""
    RESULTS.append(
        (
            f"register model versions, {BULK} a call (add_versions, stored manifests)",
            f"{bulk:,.0f} versions/s{ratio}",
            base,
            ">= 10x MLflow",
        )
    )

    reg.promote("bench:v1", to="production")
    resolve = p50(lambda: reg.resolve_version("bench@production"), 500)
    base = f"MLflow get_model_version_by_alias {ml['resolve_ms']:.3f} ms" if ml else ""
    ratio = f" ({ml['resolve_ms'] / resolve:.0f}x faster)" if ml else ""
    RESULTS.append(
        ("resolve the production version", f"p50 {resolve:.3f} ms{ratio}", base, ">= 10x faster")
    )

    for i, dep in enumerate(("D1", "D2", "D3")):
        reg.deploy(dep, f"bench:v{i + 1}", target=f"k8s/{dep}")
    sqlite_row(ingest(reg, args.predictions, ["D1", "D2", "D3"]), args.predictions)
    fill_events(reg, args.events)
    trace = p50(lambda: reg.trace_prediction(f"P{args.predictions // 2}"), 300)
    base = f"MLflow alias->version->run {ml['walk_ms']:.3f} ms" if ml else ""
    RESULTS.append(
        (
            f"backward trace ({reg.log.size():,} events, {args.predictions:,} predictions)",
            f"p50 {trace:.3f} ms",
            base,
            "p50 <= 2 ms",
        )
    )
    impact = p50(lambda: reg.impact_of_dataset("DS:bench"), 200)
    RESULTS.append(
        (
            "impact dataset -> deployments -> prediction counts",
            f"p50 {impact:.3f} ms",
            "",
            "p50 <= 20 ms",
        )
    )
    reg.close()


def sqlite_ingest(tmp: Path, count: int) -> None:
    """Prediction ingest alone, into a fresh SQLite registry with three deployments."""
    reg = setup_registry(tmp / "registry")
    for i, dep in enumerate(("D1", "D2", "D3")):
        reg.add_version("bench", model_dir(tmp / "models", i), run="R-bench")
        reg.deploy(dep, f"bench:v{i + 1}", target=f"k8s/{dep}")
    sqlite_row(ingest(reg, count, ["D1", "D2", "D3"]), count)
    reg.close()


def sqlite_row(rate: float, count: int) -> None:
    RESULTS.append(
        (f"prediction ingest, SQLite ({count:,})", f"{rate:,.0f} predictions/s", "", ">= 200,000/s")
    )


def postgres_ingest(url: str, tmp: Path, count: int) -> None:
    name = f"mltrail_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        reg = setup_registry(tmp / "pg-registry", database=url.rsplit("/", 1)[0] + "/" + name)
        reg.add_version("bench", model_dir(tmp / "pg-models", 0), run="R-bench")
        reg.deploy("D1", "bench:v1", target="k8s/D1")
        rate = ingest(reg, count, ["D1"])
        RESULTS.append(
            (
                f"prediction ingest, PostgreSQL ({count:,})",
                f"{rate:,.0f} predictions/s",
                "",
                ">= 100,000/s",
            )
        )
        reg.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
