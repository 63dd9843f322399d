"""`mltrail demo`: build the demonstration registry and show a short tour of it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mltrail.cli.main import app
from mltrail.cli.render import console, err_console, pairs, table
from mltrail.demo.story import PREDICTIONS, build_demo
from mltrail.errors import ConflictError
from mltrail.service import Registry


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to build it.")] = Path("mltrail-demo"),
    predictions: Annotated[int, typer.Option(help="How many predictions to log.")] = PREDICTIONS,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing demo directory.")
    ] = False,
) -> None:
    """Build a registry that plays the seed's stories (P123 → D45 → model:churn:v2 → R678 →
    DS:2024-05-15; the 09:03 promotion and 10:10 rollback; fraud v5's approval chain), then
    print a short tour.

    Example: mltrail demo && mltrail -r mltrail-demo/registry trace prediction P123
    """
    if (directory / "registry").exists():
        if not force:
            raise ConflictError(
                f"{directory} already holds a demo registry",
                hint="pass --force to rebuild it, or choose another directory",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console(), transient=True) as bar:
        task = bar.add_task("building the demo", total=100)
        result = build_demo(
            directory,
            predictions=predictions,
            progress=lambda message, pct: bar.update(task, completed=pct, description=message),
        )
    _tour(result.registry, result.facts, time.perf_counter() - started)


def _tour(root: Path, facts: dict[str, object], seconds: float) -> None:
    out = console()
    out.print(
        f"\nDemo registry built in {seconds:.1f}s at {root} ({facts['events']} events).\n",
        markup=False,
    )
    with Registry.open(root) as reg:
        trace = reg.trace_prediction("P123")
        out.print("Example 1 — trace of prediction P123:", markup=False)
        out.print("  " + " -> ".join(trace["chain"]), markup=False)
        env = trace.get("environment") or {}
        commit = trace.get("commit") or {}
        out.print(
            f"  commit {commit.get('commit_id')}, environment {env.get('environment_id')}, "
            f"params {trace.get('parameters')}",
            markup=False,
        )
        rows = [
            (m, reg.state_at(m, "2030-01-01T00:00:00Z")["production"]) for m in ("churn", "fraud")
        ]
        table("in production now", ("model", "version"), rows)
        out.print("Example 2 — the incident of 2024-06-01:", markup=False)
        for at in ("2024-06-01T09:00:00Z", "2024-06-01T09:30:00Z", "2024-06-01T10:30:00Z"):
            state = reg.state_at("churn", at)
            out.print(
                f"  at {at}: production {state['production']}, D45 serves "
                f"{state['deployments'].get('D45', {}).get('version')}",
                markup=False,
            )
        pairs(
            "Example 3 — fraud v5",
            {
                "version": facts.get("fraud_version"),
                "bias report sha256": facts.get("bias_report_sha256"),
            },
        )
        report = reg.verify()
        out.print(
            f"verify: {'ok' if report.ok else 'FAILED'} — {report.size} events, root {report.root}",
            markup=False,
        )
    out.print(
        f"\nTry: mltrail -r {root} trace prediction P123\n"
        f"     mltrail -r {root} prove prediction P123\n"
        f"     mltrail -r {root} production churn --at 2024-06-01T09:30:00Z\n"
        f"     mltrail -r {root} verify",
        markup=False,
    )
