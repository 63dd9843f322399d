"""The CLI reference (docs/cli.md), generated from every command's --help.

Regenerate with `python -m mltrail.cli.reference > docs/cli.md`; a test checks the
committed file is current and that every command documents an example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from mltrail.cli.main import _register_commands, app

__all__ = ["commands", "render"]


def commands() -> Iterator[tuple[str, Any]]:
    """(full name, click command) for every leaf command, in a stable order."""
    _register_commands()
    root = typer.main.get_command(app)
    yield from _walk("mltrail", root)


def _walk(prefix: str, command: Any) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield prefix, command
        return
    for name in sorted(subcommands):
        yield from _walk(f"{prefix} {name}", subcommands[name])


def _help(name: str, command: Any) -> str:
    ctx = command.make_context(name, [], resilient_parsing=True)
    return str(command.get_help(ctx))


def render() -> str:
    """The whole reference as Markdown."""
    parts = [
        "# mltrail command reference",
        "",
        "Generated from `--help` by `python -m mltrail.cli.reference`; do not edit by hand.",
        "",
    ]
    for name, command in commands():
        parts += [f"## `{name}`", "", "```text", _help(name, command).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
