"""Rendering command results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mltrail.events import Event

if TYPE_CHECKING:
    from mltrail.service import Appended

__all__ = [
    "console",
    "emit_json",
    "err_console",
    "pairs",
    "show_appended",
    "show_events",
    "table",
]


def console() -> Console:
    """A console on the current stdout (tests capture it)."""
    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def err_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table of ``rows`` under ``columns``."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(out)


def show_events(title: str | None, listed: Sequence[Event], as_json: bool) -> None:
    """Print events: their wire form as JSON, or one row each."""
    if as_json:
        emit_json([e.to_wire() for e in listed])
        return
    columns = ("seq", "time", "action", "actor", "subject", "outcome")
    rows = [
        (e.seq, e.timestamp, e.action, e.actor.id, f"{e.subject.type}:{e.subject.id}", e.outcome)
        for e in listed
    ]
    table(title, columns, rows)


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


def pairs(title: str | None, values: Mapping[str, Any]) -> None:
    """Print ``values`` as a two-column key/value table."""
    table(title, ("field", "value"), ((k, _cell(v)) for k, v in values.items()))


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value)
