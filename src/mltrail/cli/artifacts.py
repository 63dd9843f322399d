"""`mltrail artifact put|get|verify`: the content-addressed store from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt
from mltrail.cli.render import console, emit_json, pairs
from mltrail.errors import IntegrityError, InvalidInputError

artifact = typer.Typer(help="Store, fetch and check artifacts by SHA-256.", no_args_is_help=True)
app.add_typer(artifact, name="artifact")


@artifact.command("put")
def put(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File to store.", exists=True, dir_okay=False)],
    as_json: JsonOpt = False,
) -> None:
    """Store a file under its SHA-256 (streamed, constant memory) and log it.

    Example: mltrail artifact put model.onnx
    """
    with state(ctx).open() as reg, path.open("rb") as stream:
        done = reg.put_artifact(stream, name=path.name)
    info = {
        "sha256": done.event.artifact_sha256,
        "size": done.event.metadata["size"],
        "event": done.event.seq,
    }
    emit_json(info) if as_json else pairs("stored", info)


@artifact.command("get")
def get(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="SHA-256 of the artifact.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")],
) -> None:
    """Fetch an artifact, verifying its digest before it lands at --output.

    Example: mltrail artifact get 9f86d0… -o model.onnx
    """
    if output.exists() and output.is_dir():
        raise InvalidInputError(f"output {output} is a directory; name a file")
    with state(ctx).open() as reg:
        reg.get_artifact(digest, output)
    console().print(f"{digest} -> {output} (verified)", markup=False)


@artifact.command("verify")
def verify(
    ctx: typer.Context,
    digests: Annotated[
        list[str] | None, typer.Argument(help="Digests to check (default: all stored).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash stored artifacts; exits non-zero if any is missing or changed.

    Example: mltrail artifact verify
    """
    with state(ctx).open() as reg:
        report = reg.verify_artifacts(digests or None)
    if as_json:
        emit_json(report)
    else:
        for digest, problem in report["problems"].items():
            console().print(f"FAILED {digest}: {problem}", markup=False)
        console().print(
            f"{report['checked']} artifacts checked, {len(report['problems'])} failed", markup=False
        )
    if report["problems"]:
        raise IntegrityError(
            f"{len(report['problems'])} of {report['checked']} artifacts are missing or changed",
            errors=[f"{d}: {p}" for d, p in report["problems"].items()],
        )
