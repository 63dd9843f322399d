"""The `mltrail` command: parse, call `service.Registry`, render. Nothing else lives here.

`main()` catches every `RegistryError` once, prints its message and hint (no traceback
unless `--verbose`) and exits with the error's exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from mltrail.cli.render import err_console
from mltrail.errors import RegistryError
from mltrail.events import Actor
from mltrail.service import Appended, Origin, Registry

__all__ = ["app", "main"]

app = typer.Typer(
    name="mltrail",
    help="mltrail: a model registry that is a tamper-evident system of record.\n\n"
    "Example: mltrail demo && mltrail -r mltrail-demo/registry trace prediction P123",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class CliState:
    """Global options, shared by every command through the click context."""

    registry: Path
    actor: str | None
    verbose: bool

    def actor_or_none(self) -> Actor | None:
        return _parse_actor(self.actor) if self.actor else None

    def open(self) -> Registry:
        """Open the selected registry as the configured actor, marked as coming from the CLI."""
        return Registry.open(self.registry, actor=self.actor_or_none(), origin=Origin("cli"))

    def upgrade(self) -> Appended | None:
        """Migrate the selected registry's schema as the configured actor."""
        return Registry.upgrade(self.registry, actor=self.actor_or_none(), origin=Origin("cli"))


def _parse_actor(text: str) -> Actor:
    kind, sep, ident = text.partition(":")
    return Actor(kind, ident) if sep and kind in ("user", "service") else Actor("user", text)


def state(ctx: typer.Context) -> CliState:
    """The global options of this invocation."""
    return ctx.find_root().obj  # type: ignore[no-any-return]


@app.callback()
def _global(
    ctx: typer.Context,
    registry: Annotated[
        Path,
        typer.Option("--registry", "-r", envvar="MLTRAIL_REGISTRY", help="Registry directory."),
    ] = Path(".mltrail"),
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            envvar="MLTRAIL_ACTOR",
            help="Who acts in local mode: NAME, user:NAME or service:NAME.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")
    ] = False,
) -> None:
    """Global options."""
    ctx.obj = CliState(registry=registry, actor=actor, verbose=verbose)


def _register_commands() -> None:
    # Imported for their side effect of adding commands to `app`.
    from mltrail.cli import (  # noqa: F401
        artifacts,
        catalog,
        demo,
        governance,
        ledger,
        lineage,
        operations,
        report,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also the console script's entry point)."""
    _register_commands()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args or bool(os.environ.get("MLTRAIL_VERBOSE"))
    try:
        # Without standalone mode, a command's `typer.Exit(code)` comes back as the return value.
        code = command.main(args=args, prog_name="mltrail", standalone_mode=False)
    except RegistryError as exc:
        return _report(exc, verbose)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: show usage and the message, no traceback
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        err_console().print("aborted")
        return 1
    return code if isinstance(code, int) else 0


def _report(exc: RegistryError, verbose: bool) -> int:
    console = err_console()
    if verbose:
        console.print_exception()
    console.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False)
    for reason in exc.errors:
        console.print(f"  - {reason}", markup=False)
    console.print(f"[bold]hint:[/] {exc.hint()}", markup=True, highlight=False)
    return exc.exit_code


def run() -> Any:
    """Console-script entry point."""
    sys.exit(main())
