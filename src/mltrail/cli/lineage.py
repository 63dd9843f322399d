"""Questions about lineage and history: trace, history, production, rebuild, prove prediction."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from mltrail.cli.ledger import prove
from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt
from mltrail.cli.render import console, emit_json, pairs, show_events, table
from mltrail.lineage.render import to_dot, to_mermaid
from mltrail.service.base import parse_subject


class Format(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"
    mermaid = "mermaid"


FormatOpt = Annotated[Format, typer.Option("--format", help="text, json, dot or mermaid.")]

trace = typer.Typer(
    help="Walk lineage: backwards from a prediction or version, forwards from a dataset.",
    no_args_is_help=True,
)
app.add_typer(trace, name="trace")


def _emit_trace(result: dict[str, Any], fmt: Format, as_json: bool, title: str) -> None:
    edges = _trace_edges(result)
    if as_json or fmt is Format.json:
        emit_json(result)
    elif fmt is Format.dot:
        console().print(to_dot(edges, title), markup=False)
    elif fmt is Format.mermaid:
        console().print(to_mermaid(edges), markup=False)
    else:
        _print_trace(result, title)


def _trace_edges(result: dict[str, Any]) -> list[dict[str, str]]:
    edges = list(result.get("edges", []))
    if "prediction" in result:
        pid, dep = result["prediction"]["prediction_id"], result["deployment"]["deployment_id"]
        edges = [
            {"from": f"prediction:{pid}", "role": "served_by", "to": f"deployment:{dep}"},
            {
                "from": f"deployment:{dep}",
                "role": "served",
                "to": f"model_version:{result['model_version']['version_id']}",
            },
            *edges,
        ]
    return edges


def _print_trace(result: dict[str, Any], title: str) -> None:
    console().print(f"{title}: " + " -> ".join(result.get("chain", [])), markup=False)
    for key in ("prediction", "deployment", "model_version", "run", "commit", "environment"):
        if result.get(key):
            pairs(key, result[key])
    for dataset in result.get("datasets", []):
        pairs("dataset", dataset)


@trace.command("prediction")
def trace_prediction(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(help="Prediction id, e.g. P123.")],
    fmt: FormatOpt = Format.text,
    as_json: JsonOpt = False,
) -> None:
    """P → deployment → model version → run → datasets, commit, environment, parameters.

    Example: mltrail trace prediction P123 --format mermaid
    """
    with state(ctx).open() as reg:
        result = reg.trace_prediction(prediction_id)
    _emit_trace(result, fmt, as_json, f"prediction {prediction_id}")


@trace.command("version")
def trace_version(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. churn:v2 or churn@production.")],
    fmt: FormatOpt = Format.text,
    as_json: JsonOpt = False,
) -> None:
    """Model version → run → datasets, commit, environment, parameters.

    Example: mltrail trace version churn@production --json
    """
    with state(ctx).open() as reg:
        result = reg.trace_version(version)
    _emit_trace(result, fmt, as_json, f"version {version}")


@trace.command("dataset")
def trace_dataset(
    ctx: typer.Context,
    dataset_id: Annotated[str, typer.Argument(help="Dataset id, e.g. DS:2024-05-15.")],
    down: Annotated[
        bool, typer.Option("--down", help="Impact: what this dataset influenced.")
    ] = True,
    fmt: FormatOpt = Format.text,
    as_json: JsonOpt = False,
) -> None:
    """Impact of a dataset: runs, versions, deployments and prediction counts.

    Example: mltrail trace dataset DS:2024-05-15 --down
    """
    with state(ctx).open() as reg:
        result = reg.impact_of_dataset(dataset_id)
    if as_json or fmt is not Format.text:
        _emit_trace(result, fmt, as_json, f"dataset {dataset_id}")
        return
    pairs(
        f"impact of dataset {dataset_id}",
        {k: result[k] for k in ("runs", "model_versions", "deployments", "prediction_total")},
    )
    table(
        "predictions served",
        ("deployment", "model version", "count"),
        ((c["deployment"], c["model_version"], c["count"]) for c in result["predictions"]),
    )


@app.command()
def history(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Argument(help="TYPE:ID, e.g. model_version:model:churn:v2 or deployment:D45.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Every event that touched a subject, as subject or as related reference.

    Example: mltrail history deployment:D45
    """
    ref = parse_subject(subject)
    with state(ctx).open() as reg:
        events = reg.history(ref.type, ref.id)
    show_events(f"history of {subject}", events, as_json)


@app.command()
def production(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    at: Annotated[str, typer.Option(help="Point in time (RFC 3339), e.g. 2024-06-01T09:30:00Z.")],
    as_json: JsonOpt = False,
) -> None:
    """What was in production, and what each deployment served, at a point in time (from the log).

    Example: mltrail production churn --at 2024-06-01T09:30:00Z
    """
    with state(ctx).open() as reg:
        result = reg.state_at(model, at)
    if as_json:
        emit_json(result)
        return
    pairs(f"{model} at {result['at']}", {"production": result["production"]})
    table(
        "deployments",
        ("deployment", "version", "since"),
        ((d, v["version"], v["since"]) for d, v in result["deployments"].items()),
    )


@app.command()
def rebuild(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-derive every projection from the log and report whether it equals the live tables.

    Example: mltrail rebuild
    """
    with state(ctx).open() as reg:
        result = reg.rebuild()
    if as_json:
        emit_json(result)
    else:
        table(
            "rebuild",
            ("table", "live rows", "rebuilt rows", "equal"),
            (
                (n, v["live_rows"], v["rebuilt_rows"], v["equal"])
                for n, v in result["tables"].items()
            ),
        )
    if not result["equal"]:
        raise typer.Exit(7)


@prove.command("prediction")
def prove_prediction(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(help="Prediction id, e.g. P123.")],
    as_json: JsonOpt = False,
) -> None:
    """Record → batch root → ledger entry → signed checkpoint, each step verified.

    Example: mltrail prove prediction P123
    """
    with state(ctx).open() as reg:
        result = reg.prove_prediction(prediction_id)
    if as_json:
        emit_json(result)
        return
    out = console()
    out.print(f"record     {result['record_sha256']}  (prediction {prediction_id})", markup=False)
    b = result["batch"]
    out.print(
        f"batch      leaf {b['index']} of {b['size']}, root {b['root']} ({len(b['proof'])} hashes)",
        markup=False,
    )
    led = result["ledger"]
    out.print(
        f"ledger     event {led['index']} sha256 {led['event_sha256']} "
        f"({len(led['proof'])} hashes)",
        markup=False,
    )
    out.print("checkpoint (signed):", markup=False)
    out.print(result["checkpoint"], end="", markup=False)
    out.print("verified: record -> batch root -> ledger entry -> checkpoint", markup=False)
