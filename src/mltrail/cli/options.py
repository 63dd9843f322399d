"""Options and output shared by every command: --json, KEY=VALUE lists, an appended event."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mltrail.canonical import loads
from mltrail.cli.render import emit_json, pairs
from mltrail.errors import InvalidInputError
from mltrail.service import Appended

__all__ = ["JsonOpt", "key_values", "show_appended"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def show_appended(done: Appended, as_json: bool, title: str) -> None:
    """Print what a command appended: subject, log index, action, digests (or JSON)."""
    event = done.event
    info = {
        "subject": f"{event.subject.type}:{event.subject.id}",
        "event": event.seq,
        "action": event.action,
        "event_sha256": event.event_sha256,
    }
    if event.subject.digest:
        info["digest"] = event.subject.digest
    emit_json(info) if as_json else pairs(title, info)


def key_values(values: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` options; values are parsed as JSON when they can be (numbers, booleans)."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"{what} {item!r} should be KEY=VALUE", hint=f"for example --{what} lr=0.01"
            )
        try:
            out[key] = loads(raw)
        except InvalidInputError:
            out[key] = raw
    return out
