"""Commands on the log itself: init, log, show, checkpoint, prove, verify, witness."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt
from mltrail.cli.render import console, emit_json, err_console, pairs, show_events
from mltrail.errors import InvalidInputError
from mltrail.events import Event, format_timestamp, parse_timestamp
from mltrail.ledger.log import EventFilter
from mltrail.ledger.witness import Witness
from mltrail.service import Origin, Registry
from mltrail.service.base import parse_subject


@app.command()
def init(
    ctx: typer.Context,
    database: Annotated[
        str | None, typer.Option(help="Database URL (default: SQLite in the registry directory).")
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact store URL: file:///dir or s3://bucket/prefix.")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="Log origin name, e.g. mltrail.example.com/prod.")
    ] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint URL.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a registry: signing key, configuration, schema and the first event.

    Example: mltrail -r ./.mltrail init --origin mltrail.example.com/ml
    """
    cli = state(ctx)
    reg = Registry.init(
        cli.registry,
        database=database,
        artifacts=artifacts,
        origin=origin,
        s3_endpoint_url=s3_endpoint_url,
        actor=cli.actor_or_none(),
        interface=Origin("cli"),
    )
    info = {
        "registry": str(reg.root),
        "origin": reg.settings.origin,
        "database": reg.settings.database,
        "artifacts": reg.settings.artifacts,
        "verifier_key": reg.verifier_key,
    }
    emit_json(info) if as_json else pairs("registry created", info)


@app.command("log")
def log_command(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Option(help="TYPE:ID, e.g. model_version:model:churn:v2.")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. promote.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this actor id.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (RFC 3339), inclusive.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this time (RFC 3339), exclusive.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 50,
    reverse: Annotated[bool, typer.Option("--reverse", help="Newest first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List events, filtered by subject, action, actor and time range.

    Example: mltrail log --action promote --since 2024-06-01T00:00:00Z --json
    """
    ref = parse_subject(subject) if subject else None
    where = EventFilter(
        subject_type=ref.type if ref else None,
        subject_id=ref.id if ref else None,
        action=action,
        actor_id=actor,
        since=_time(since),
        until=_time(until),
        limit=limit,
        descending=reverse,
    )
    with state(ctx).open() as reg:
        events = list(reg.events(where))
    show_events(None, events, as_json)


@app.command()
def show(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="Event index (seq) or event id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one event in full, with its digest.

    Example: mltrail show 41 --json
    """
    with state(ctx).open() as reg:
        found = reg.event(_event_ref(event))
        wire = found.to_wire()
    emit_json(wire) if as_json else _print_event(found, wire)


def _print_event(event: Event, wire: dict[str, Any]) -> None:
    pairs(f"event {event.seq}", {k: v for k, v in wire.items() if k != "seq"})


@app.command()
def checkpoint(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the newest signed checkpoint (C2SP signed note) and the verifier key.

    Example: mltrail checkpoint > trusted.note
    """
    with state(ctx).open() as reg:
        body, note = reg.checkpoint()
        key = reg.verifier_key
    if as_json:
        emit_json(
            {
                "origin": body.origin,
                "size": body.size,
                "root": body.root_hash.hex(),
                "note": note,
                "verifier_key": key,
            }
        )
    else:
        console().print(note, end="", markup=False)


prove = typer.Typer(
    help="Produce and check proofs: inclusion of an event, consistency of two sizes.",
    no_args_is_help=True,
)
app.add_typer(prove, name="prove")


@prove.command("event")
def prove_event(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="Event index (seq) or event id.")],
    as_json: JsonOpt = False,
) -> None:
    """Inclusion proof of an event in the newest checkpoint (C2SP tlog-proof text).

    Example: mltrail prove event 41 > event-41.tlog-proof
    """
    with state(ctx).open() as reg:
        receipt = reg.prove_event(_event_ref(event))
    if as_json:
        emit_json(
            {
                "index": receipt.index,
                "event_sha256": receipt.event_sha256,
                "proof": [h.hex() for h in receipt.proof],
                "checkpoint": receipt.checkpoint,
            }
        )
    else:
        console().print(receipt.to_text(), end="", markup=False)


@prove.command("consistency")
def prove_consistency(
    ctx: typer.Context,
    size1: Annotated[int, typer.Argument(help="The older tree size.")],
    size2: Annotated[
        int | None, typer.Argument(help="The newer tree size (default: newest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Consistency proof between two signed tree sizes (RFC 9162 §2.1.4).

    Example: mltrail prove consistency 10 57 --json
    """
    with state(ctx).open() as reg:
        proof = reg.prove_consistency(size1, size2)
    if as_json:
        emit_json(proof)
    else:
        console().print(f"consistent: {size1} -> {proof['size2']}", markup=False)
        for line in proof["proof"]:
            console().print(base64.b64encode(bytes.fromhex(line)).decode(), markup=False)


@app.command()
def verify(
    ctx: typer.Context,
    trusted: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint note kept earlier (or a witness directory); the log must extend it."
        ),
    ] = None,
    all_signatures: Annotated[
        bool, typer.Option("--all-signatures", help="Check every stored checkpoint's signature.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every event digest, leaf, subtree and root; check signatures and history.

    Exits 0 only when every check holds; otherwise names the first bad index and what is wrong.

    Example: mltrail verify --trusted witness/checkpoint.note
    """
    note = _trusted_note(trusted) if trusted else None
    with state(ctx).open() as reg:
        report = _verify_with_progress(reg, note, all_signatures, show=not as_json)
    if as_json:
        emit_json(report.to_dict())
    elif report.ok:
        console().print(
            f"ok: {report.size} events, {report.nodes_checked} subtrees and "
            f"{report.checkpoints_checked} checkpoints verified in {report.seconds:.2f}s; "
            f"root {report.root}",
            markup=False,
        )
    report.raise_for_problems()


def _verify_with_progress(reg: Registry, note: str | None, every: bool, *, show: bool) -> Any:
    if not show:
        return reg.verify(trusted=note, all_signatures=every)
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Redrawn on each report, not by rich's refresh thread: a single-threaded process can
    # fork its verify workers (`mltrail.ledger.pool.start_method`) instead of spawning them.
    with Progress(*columns, console=err_console(), transient=True, auto_refresh=False) as bar:
        task = bar.add_task("verify", total=None)
        return reg.verify(
            trusted=note,
            all_signatures=every,
            progress=lambda done, total: bar.update(
                task, completed=done, total=total, refresh=True
            ),
        )


def _trusted_note(path: Path) -> str:
    if path.is_dir():
        note = Witness.load(path).trusted_note()
        if note is None:
            raise InvalidInputError(f"witness {path} has not accepted any checkpoint yet")
        return note
    if not path.is_file():
        raise InvalidInputError(
            f"trusted checkpoint file {path} does not exist",
            hint="save one with `mltrail checkpoint > FILE`",
        )
    return path.read_text()


@app.command()
def witness(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The witness's state directory.")],
    init_: Annotated[
        bool, typer.Option("--init", help="Create the witness (its key and state).")
    ] = False,
    name: Annotated[str, typer.Option(help="Witness name, with --init.")] = "mltrail.local/witness",
    as_json: JsonOpt = False,
) -> None:
    """Witness the registry's newest checkpoint: accept it only if it extends the last one
    this witness accepted (consistency proof), then cosign it. Refuses rollbacks and forks.

    Example: mltrail witness --init ~/witness && mltrail witness ~/witness
    """
    with state(ctx).open() as reg:
        wit = (
            Witness.create(directory, name=name, log_key=reg.verifier_key)
            if init_
            else Witness.load(directory)
        )
        previous = wit.trusted()
        body, note = reg.checkpoint()
        proof: list[bytes] = []
        if previous is not None and 0 < previous.size < body.size:
            proof = [
                bytes.fromhex(h) for h in reg.prove_consistency(previous.size, body.size)["proof"]
            ]
        accepted = wit.accept(note, proof)
    info = {
        "accepted_size": accepted.size,
        "previous_size": previous.size if previous else None,
        "root": accepted.root_hash.hex(),
        "cosigner_key": wit.cosigner_key,
        "note": str(directory / "checkpoint.note"),
    }
    emit_json(info) if as_json else pairs("checkpoint witnessed and cosigned", info)


def _event_ref(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _time(text: str | None) -> str | None:
    return None if text is None else format_timestamp(parse_timestamp(text))
