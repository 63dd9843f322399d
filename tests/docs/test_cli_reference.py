"""Every command is documented: help with an example, and docs/cli.md is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mltrail.cli import reference

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = list(reference.commands())


def test_every_command_is_listed() -> None:
    names = {name for name, _ in COMMANDS}
    for expected in (
        "mltrail verify",
        "mltrail trace prediction",
        "mltrail promote",
        "mltrail repro",
        "mltrail export evidence",
        "mltrail verify-bundle",
        "mltrail demo",
    ):
        assert expected in names


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_help_has_an_example(name: str, command: object) -> None:
    text = reference._help(name, command)
    assert "Example: mltrail" in text, f"{name} --help has no example"


def test_cli_reference_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert reference.render() == committed, (
        "docs/cli.md is stale; regenerate it with "
        "`COLUMNS=100 python -m mltrail.cli.reference > docs/cli.md`"
    )


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    names = {name.removeprefix("mltrail ") for name, _ in COMMANDS}
    pattern = r"^\s*(?:\.venv/bin/)?mltrail (?:-\S+ \S+ )*([a-z][a-z-]+(?: [a-z][a-z-]+)?)"
    used = set(re.findall(pattern, readme, re.M))
    assert used, "README shows no mltrail commands"
    for phrase in used:
        assert phrase in names or phrase.split()[0] in {n.split()[0] for n in names}, phrase
