"""Commands that register things: datasets, code, environments, runs, models, deployments,
predictions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from mltrail.canonical import loads
from mltrail.capture.environment import capture_environment
from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt, key_values
from mltrail.cli.render import emit_json, show_appended, table
from mltrail.errors import FormatError
from mltrail.service import VersionSpec

dataset = typer.Typer(help="Dataset versions and their content identity.", no_args_is_help=True)
code = typer.Typer(help="Code versions (git commits).", no_args_is_help=True)
env = typer.Typer(help="Environment fingerprints.", no_args_is_help=True)
run = typer.Typer(help="Training runs.", no_args_is_help=True)
model = typer.Typer(help="Models, versions and aliases.", no_args_is_help=True)
predictions = typer.Typer(help="Prediction logs.", no_args_is_help=True)
for name, group in (
    ("dataset", dataset),
    ("code", code),
    ("env", env),
    ("run", run),
    ("model", model),
    ("predictions", predictions),
):
    app.add_typer(group, name=name)


@dataset.command("register")
def dataset_register(
    ctx: typer.Context,
    dataset_id: Annotated[str, typer.Argument(help="Dataset version id, e.g. DS:2024-05-15.")],
    name: Annotated[str, typer.Option(help="Dataset name.")],
    version: Annotated[str, typer.Option(help="Version label.")],
    uri: Annotated[str | None, typer.Option(help="Where the data lives.")] = None,
    path: Annotated[Path | None, typer.Option(help="Directory to hash and store.")] = None,
    digest: Annotated[
        str | None, typer.Option(help="SHA-256 of a manifest kept elsewhere.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a dataset version by its content (a SHA-256 manifest of its files).

    Example: mltrail dataset register DS:2024-05-15 --name churn --version 2024-05-15 --path data/
    """
    with state(ctx).open() as reg:
        done = reg.register_dataset(
            dataset_id, name=name, version=version, uri=uri, path=path, digest=digest
        )
    show_appended(done, as_json, "dataset registered")


@code.command("register")
def code_register(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Option(help="A git checkout (default: current directory).")
    ] = None,
    repository: Annotated[str | None, typer.Option(help="Repository, with --commit.")] = None,
    commit: Annotated[str | None, typer.Option(help="Commit SHA given explicitly.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a code version, captured from git (dirty trees flagged) or given.

    Example: mltrail code register --path .
    """
    with state(ctx).open() as reg:
        done = reg.register_code(path=path, repository=repository, commit=commit)
    show_appended(done, as_json, "code registered")


@env.command("register")
def env_register(
    ctx: typer.Context,
    project_dir: Annotated[Path, typer.Option(help="Where lockfiles are.")] = Path("."),
    image_digest: Annotated[
        str | None, typer.Option(help="Container image digest sha256:….")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fingerprint this interpreter (packages, lockfiles, Python, platform, GPU) and register it.

    Example: mltrail env register --project-dir .
    """
    fingerprint = capture_environment(project_dir, image_digest=image_digest, env=dict(os.environ))
    with state(ctx).open() as reg:
        done = reg.register_environment(fingerprint, project_dir=project_dir)
    show_appended(done, as_json, "environment registered")


@run.command("register")
def run_register(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="Run id, e.g. R678 (default: a new UUIDv7).")
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    dataset_id: Annotated[
        list[str] | None, typer.Option("--dataset", help="Input dataset id, repeatable.")
    ] = None,
    commit: Annotated[str | None, typer.Option(help="Registered commit SHA.")] = None,
    environment: Annotated[
        str | None, typer.Option("--env", help="Registered environment id.")
    ] = None,
    status: Annotated[str, typer.Option(help="running, finished, failed or killed.")] = "finished",
    started_at: Annotated[str | None, typer.Option(help="RFC 3339 start time.")] = None,
    ended_at: Annotated[str | None, typer.Option(help="RFC 3339 end time.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a training run with its datasets, commit, environment, parameters, metrics.

    Example: mltrail run register R678 --param lr=0.01 --metric auc=0.92 --dataset DS:2024-05-15
    """
    with state(ctx).open() as reg:
        done = reg.register_run(
            run_id,
            params=key_values(param, "param"),
            metrics=key_values(metric, "metric"),
            datasets=dataset_id or [],
            commit=commit,
            environment=environment,
            status=status,
            started_at=started_at,
            ended_at=ended_at,
        )
    show_appended(done, as_json, "run registered")


@model.command("register")
def model_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    description: Annotated[str | None, typer.Option(help="What the model does.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a model name.

    Example: mltrail model register churn --description "churn propensity"
    """
    with state(ctx).open() as reg:
        done = reg.register_model(name, description=description)
    show_appended(done, as_json, "model registered")


@model.command("add-version")
def model_add_version(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[Path | None, typer.Argument(help="Directory with the model files.")] = None,
    manifest: Annotated[
        str | None, typer.Option(help="Instead of a directory: SHA-256 of a stored manifest.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="The run that produced it.")] = None,
    entrypoint: Annotated[
        str | None, typer.Option(help="Scoring entry point: file.py:function or module:function.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store the files as the next version (v1, v2, …); the manifest digest is its identity.

    Example: mltrail model add-version churn ./model --run R678 --entrypoint score.py:predict
    """
    with state(ctx).open() as reg:
        done = reg.add_version(name, path, manifest=manifest, run=run_id, entrypoint=entrypoint)
    show_appended(done, as_json, "version registered")


@model.command("add-versions")
def model_add_versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines, or one JSON list, of objects with path or manifest, and "
            "optionally run and entrypoint; relative paths are read from FILE's directory.",
            exists=True,
            dir_okay=False,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Register many versions in one commit with one signed checkpoint, all or nothing:
    each item as `model add-version` takes it, numbered in the order given.

    Example: mltrail model add-versions churn versions.jsonl
    """
    specs = _version_specs(file)
    with state(ctx).open() as reg:
        done = reg.add_versions(name, specs)
    rows = [
        {
            "version": d.event.subject.id,
            "event": d.event.seq,
            "manifest_sha256": d.event.subject.digest,
            "event_sha256": d.event.event_sha256,
        }
        for d in done
    ]
    if as_json:
        emit_json(rows)
    else:
        table(
            "versions registered",
            ("version", "event", "manifest sha256"),
            ((r["version"], r["event"], r["manifest_sha256"]) for r in rows),
        )


def _version_specs(file: Path) -> list[VersionSpec]:
    """The versions ``file`` lists, as JSON Lines or as one JSON list; a relative path is
    taken from the file's directory.

    Raises:
        FormatError: the file is not UTF-8 JSON, or an item is not a version; the message
            names the file and the line or item.
    """
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{file} is not UTF-8 text: {exc}", hint=_SPECS_HINT) from exc
    if text.lstrip().startswith("["):
        with _in(file):
            listed = loads(text)
        items = [(f"item {i}", item) for i, item in enumerate(listed, 1)]
    else:
        items = []
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                with _in(file, f"line {number}"):
                    items.append((f"line {number}", loads(line)))
    if not items:
        raise FormatError(f"{file} lists no versions", hint=_SPECS_HINT)
    specs = []
    for where, item in items:
        with _in(file, where):
            specs.append(VersionSpec.from_dict(item))
    return [replace(s, path=file.parent / s.path) if s.path is not None else s for s in specs]


_SPECS_HINT = (
    'list one version per line, e.g. {"manifest": "<sha256>", "run": "R678"} or '
    '{"path": "model-v2", "entrypoint": "score.py:predict"}'
)


@contextlib.contextmanager
def _in(file: Path, where: str | None = None) -> Iterator[None]:
    """A FormatError raised inside names ``file`` and the line or item (``where``)."""
    try:
        yield
    except FormatError as exc:
        place = f"{file}, {where}" if where else str(file)
        raise FormatError(f"{place}: {exc.message}", hint=_SPECS_HINT) from exc


@model.command("show")
def model_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonOpt = False,
) -> None:
    """List a model's versions with stage, flags and digests.

    Example: mltrail model show churn
    """
    with state(ctx).open() as reg:
        rows = reg.list_versions(name)
    if as_json:
        emit_json(rows)
        return
    table(
        f"model {name}",
        ("version", "stage", "flags", "run", "manifest sha256", "event"),
        (
            (
                r["version_id"],
                r["stage"],
                ",".join(r["flags"]),
                r["run_id"],
                r["manifest_sha256"],
                r["seq"],
            )
            for r in rows
        ),
    )


@model.command("alias")
def model_alias(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. churn:v2.")],
    alias: Annotated[str, typer.Argument(help="Alias name, e.g. champion.")],
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version (its history stays in the log).

    Example: mltrail model alias churn:v2 champion
    """
    with state(ctx).open() as reg:
        done = reg.set_alias(version, alias)
    show_appended(done, as_json, "alias set")


@app.command()
def deploy(
    ctx: typer.Context,
    deployment_id: Annotated[str, typer.Argument(help="Deployment id, e.g. D45.")],
    version: Annotated[
        str, typer.Argument(help="Version: model:churn:v2, churn:v2 or churn@production.")
    ],
    target: Annotated[str, typer.Option(help="Where it runs, e.g. k8s/prod/churn-api.")],
    config: Annotated[
        Path | None, typer.Option(help="Deployment config (JSON); its digest is recorded.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Point a deployment at a model version.

    Example: mltrail deploy D45 churn:v2 --target k8s/prod/churn-api
    """
    settings = loads(config.read_bytes()) if config else None
    with state(ctx).open() as reg:
        done = reg.deploy(deployment_id, version, target=target, config=settings)
    show_appended(done, as_json, "deployed")


@app.command()
def rollback(
    ctx: typer.Context,
    deployment_id: Annotated[str, typer.Argument(help="Deployment id.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the log).")],
    to: Annotated[
        str | None, typer.Option(help="Version to return to (default: the previous one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Roll a deployment back to a known-good version.

    Example: mltrail rollback D45 --reason "CTR dropped 8%"
    """
    with state(ctx).open() as reg:
        done = reg.rollback(deployment_id, to=to, reason=reason)
    show_appended(done, as_json, "rolled back")


@app.command()
def retire(
    ctx: typer.Context,
    deployment_id: Annotated[str, typer.Argument(help="Deployment id.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_json: JsonOpt = False,
) -> None:
    """Retire a deployment.

    Example: mltrail retire D45 --reason "replaced by D46"
    """
    with state(ctx).open() as reg:
        done = reg.retire_deployment(deployment_id, reason=reason)
    show_appended(done, as_json, "retired")


@predictions.command("log")
def predictions_log(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines: prediction_id, deployment, input or input_hmac, output[, timestamp].",
            exists=True,
            dir_okay=False,
        ),
    ],
    no_inputs: Annotated[
        bool, typer.Option("--no-keep-inputs", help="Do not keep raw inputs for reproduction.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest predictions in batches: one ledger event per batch, carrying its Merkle root.

    Example: mltrail predictions log predictions.jsonl
    """
    records = [loads(line) for line in file.read_text().splitlines() if line.strip()]
    with state(ctx).open() as reg:
        done = reg.log_predictions(records, keep_inputs=not no_inputs)
    rows = [
        {
            "batch": d.event.subject.id,
            "event": d.event.seq,
            "count": d.event.metadata["count"],
            "root": d.event.metadata["root"],
        }
        for d in done
    ]
    if as_json:
        emit_json(rows)
    else:
        table(
            "predictions logged",
            ("batch", "event", "count", "root"),
            ((r["batch"], r["event"], r["count"], r["root"]) for r in rows),
        )
