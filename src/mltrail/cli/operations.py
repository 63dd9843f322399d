"""Operations: reproduce a prediction, reconcile storage, erasure, retention, legal holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt
from mltrail.cli.render import console, emit_json, pairs, show_appended, table
from mltrail.errors import IntegrityError

retention = typer.Typer(help="Retention windows for kept payloads.", no_args_is_help=True)
app.add_typer(retention, name="retention")

EXIT_DIFFERENT = 10
EXIT_NOT_REPRODUCIBLE = 11


@app.command()
def upgrade(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Migrate the registry's database to this mltrail's schema, and log who did it (admin).

    A registry whose schema is older than the installed mltrail refuses every other command
    until this runs. Back up the database first: on SQLite some migrations rebuild the
    ledger's tables, which takes time and disk in proportion to the log.

    Example: mltrail upgrade
    """
    done = state(ctx).upgrade()
    if done is None:
        if as_json:
            emit_json({"upgraded": False})
        else:
            console().print("the schema is already current; nothing to do")
        return
    before, after = done.event.metadata["from_schema"], done.event.metadata["to_schema"]
    show_appended(done, as_json, f"schema upgraded from {before} to {after}")


@app.command()
def repro(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(help="Prediction id, e.g. P123.")],
    isolated: Annotated[
        bool,
        typer.Option(
            "--isolated", help="Score in a fresh virtualenv built from the recorded lockfile."
        ),
    ] = False,
    wheel_dir: Annotated[
        Path | None,
        typer.Option(help="Install offline from this wheel directory (with --isolated)."),
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Absolute tolerance for floats (default: exact).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the chain, fetch the model by digest, re-score the recorded input and compare.

    Exit codes: 0 reproduced, 10 different, 11 not reproducible (input erased, artifact
    missing, digest mismatch). The outcome is appended to the log as evidence.

    Example: mltrail repro P123 --isolated --wheel-dir ./wheels
    """
    with state(ctx).open() as reg:
        result = reg.reproduce(
            prediction_id, isolated=isolated, wheel_dir=wheel_dir, tolerance=tolerance
        )
    if as_json:
        emit_json(result)
    else:
        out = console()
        out.print("chain: " + " -> ".join(result["chain"]), markup=False)
        for line in result.get("environment_differences", []):
            out.print(f"environment: {line}", markup=False)
        out.print(
            f"outcome: {result['outcome']}"
            + (
                f" ({result.get('reason') or result.get('difference')})"
                if result["outcome"] != "reproduced"
                else ""
            ),
            markup=False,
        )
        if "output" in result:
            out.print(f"recorded {result['recorded_output']}  now {result['output']}", markup=False)
        out.print(f"logged as event {result['event']}", markup=False)
    if result["outcome"] == "different":
        raise typer.Exit(EXIT_DIFFERENT)
    if result["outcome"] == "not reproducible":
        raise typer.Exit(EXIT_NOT_REPRODUCIBLE)


@app.command()
def reconcile(
    ctx: typer.Context,
    sample: Annotated[
        int | None,
        typer.Option(help="Re-hash only this many random artifacts (sizes are always checked)."),
    ] = None,
    alert_command: Annotated[
        str | None, typer.Option(help="Run this on mismatch, with the JSON report on stdin.")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST the JSON report here on mismatch.")
    ] = None,
    resolve: Annotated[
        str | None,
        typer.Option(help="Clear a version's integrity flag once its files verify again."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, with --resolve.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Check every artifact the log references against storage; flag affected versions.

    Exit codes for schedulers: 0 all good, 7 missing or changed artifacts.

    Example: mltrail reconcile --alert-command "/usr/local/bin/page-oncall"
    """
    with state(ctx).open() as reg:
        if resolve:
            show_appended(
                reg.resolve_integrity(resolve, reason=reason or "artifacts restored"),
                as_json,
                "resolved",
            )
            return
        report = reg.reconcile(sample=sample, alert_command=alert_command, webhook=webhook)
    if as_json:
        emit_json(report)
    else:
        pairs(
            "reconciliation",
            {k: report[k] for k in ("referenced", "checked", "ok", "failing_versions", "event")}
            | {"orphans": len(report["orphans"])},
        )
        table("problems", ("artifact", "problem"), sorted(report["problems"].items()))
    if report["problems"]:
        raise IntegrityError(
            f"{len(report['problems'])} artifacts are missing or changed; "
            f"versions flagged: {', '.join(report['failing_versions']) or 'none'}",
            hint="restore them, then `mltrail reconcile --resolve VERSION`",
        )


@app.command()
def erase(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="The request (e.g. ticket id).")],
    prediction: Annotated[
        str | None, typer.Option(help="Erase the kept input of this prediction.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Erase every payload of this data subject.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove kept payloads (never ledger events); proofs still verify. A legal hold defers it.

    Example: mltrail erase --subject customer-8812 --reason "GDPR art. 17 request #4411"
    """
    with state(ctx).open() as reg:
        done = reg.erase(prediction_id=prediction, data_subject=subject, reason=reason)
    status = done.event.metadata.get("status")
    show_appended(done, as_json, f"erasure {status}")
    if status == "deferred":
        console().print(
            "deferred: " + "; ".join(done.event.metadata.get("reasons", [])), markup=False
        )


@app.command()
def hold(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="prediction:ID or subject:ID.")],
    reason: Annotated[str, typer.Option(help="Why (e.g. litigation reference).")],
    release: Annotated[bool, typer.Option("--release", help="Lift the hold.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Place (or lift) a legal hold: purging and erasure pause for that prediction or subject.

    Example: mltrail hold subject:customer-8812 --reason "case 2024-117"
    """
    with state(ctx).open() as reg:
        done = reg.release(key, reason=reason) if release else reg.hold(key, reason=reason)
    show_appended(done, as_json, "hold released" if release else "hold placed")


@retention.command("apply")
def retention_apply(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be removed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete payloads past their retention window (never ledger events) and log it.

    Example: mltrail retention apply --dry-run
    """
    with state(ctx).open() as reg:
        report = reg.apply_retention(dry_run=dry_run)
    if as_json:
        emit_json(report)
        return
    table(
        "retention" + (" (dry run)" if dry_run else ""),
        ("class", "cutoff", "expired", "removed", "held"),
        (
            (k, v["cutoff"], v["expired"], 0 if dry_run else v["removable"], v["held"])
            for k, v in report["classes"].items()
        ),
    )
