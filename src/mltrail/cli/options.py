"""Options shared by every command: --json, KEY=VALUE lists."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mltrail.canonical import loads
from mltrail.errors import InvalidInputError

__all__ = ["JsonOpt", "key_values"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


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
