"""The auditor's commands: compliance and incident reports, evidence bundles."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.main import app, state
from mltrail.cli.render import console, pairs
from mltrail.errors import InvalidInputError
from mltrail.report.bundle import verify_bundle, write_bundle
from mltrail.report.compliance import render_compliance
from mltrail.report.incident import render_incident


class ReportFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    json = "json"


FormatOpt = Annotated[ReportFormat, typer.Option("--format", help="markdown, html or json.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]

report = typer.Typer(help="Reports for auditors and incident reviews.", no_args_is_help=True)
export = typer.Typer(
    help="Export self-contained, offline-verifiable evidence.", no_args_is_help=True
)
app.add_typer(report, name="report")
app.add_typer(export, name="export")


def _write(text: str, output: Path | None) -> None:
    if output is None:
        console().print(text, markup=False, end="" if text.endswith("\n") else "\n")
    else:
        output.write_text(text)
        console().print(f"wrote {output}", markup=False)


@report.command("compliance")
def report_compliance(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5 or fraud@production.")],
    fmt: FormatOpt = ReportFormat.markdown,
    output: OutputOpt = None,
) -> None:
    """Who approved what, under which policy, with which evidence — each entry with its log
    index and inclusion proof against a signed checkpoint (seed Example 3).

    Example: mltrail report compliance fraud:v5 --format html -o fraud-v5.html
    """
    with state(ctx).open() as reg:
        evidence = reg.compliance_evidence(version)
    _write(render_compliance(evidence, fmt.value), output)


@report.command("incident")
def report_incident(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Model name.")],
    since: Annotated[str, typer.Option("--from", help="Start (RFC 3339).")],
    until: Annotated[str, typer.Option("--to", help="End (RFC 3339).")],
    fmt: FormatOpt = ReportFormat.markdown,
    output: OutputOpt = None,
) -> None:
    """The timeline around an incident: validations, decisions, overrides, promotions,
    deployments, rollbacks (seed Example 2).

    Example: mltrail report incident --model churn --from 2024-06-01T08:00Z --to 2024-06-01T12:00Z
    """
    with state(ctx).open() as reg:
        timeline = reg.incident_timeline(model, since, until)
    _write(render_incident(timeline, fmt.value), output)


@export.command("evidence")
def export_evidence(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to create.")],
) -> None:
    """Write a self-contained evidence bundle that `mltrail verify-bundle` checks offline.

    Example: mltrail export evidence fraud:v5 -o fraud-v5-evidence
    """
    if output.exists() and any(output.iterdir()):
        raise InvalidInputError(f"{output} exists and is not empty", hint="choose a new directory")
    with state(ctx).open() as reg:
        evidence = reg.compliance_evidence(version)
        key = reg.verifier_key
    write_bundle(evidence, output)
    console().print(
        f"wrote {output}\nverify offline with: mltrail verify-bundle {output} --key '{key}'",
        markup=False,
    )


@app.command("verify-bundle")
def verify_bundle_command(
    directory: Annotated[
        Path, typer.Argument(help="An exported evidence bundle.", exists=True, file_okay=False)
    ],
    key: Annotated[
        str, typer.Option(help="The registry's verifier key (`mltrail checkpoint --json`).")
    ],
) -> None:
    """Check an evidence bundle offline, trusting nothing but the registry's public key: event
    digests, inclusion proofs, checkpoint signature, DSSE signatures, manifest digests.

    Example: mltrail verify-bundle fraud-v5-evidence --key 'mltrail.demo/registry+1a2b3c4d+AX…'
    """
    result = verify_bundle(directory, key)
    pairs("bundle verified", dataclasses.asdict(result))
