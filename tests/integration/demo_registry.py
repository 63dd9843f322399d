"""Helpers for tests on a copy of the demo registry (the fixtures `pristine`, `root` and
`reg` are in this folder's conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mltrail.cli.main import main
from mltrail.events import Actor
from mltrail.settings import load_settings

ADMIN = Actor("user", "mlops.alex")


def copy_registry(source: Path, dest: Path) -> Path:
    """A restored backup: the directory copied, its config pointed at the copy's own files."""
    shutil.copytree(source, dest)
    settings = load_settings(dest)
    settings.database = f"sqlite:///{dest / 'registry.db'}"
    settings.artifacts = (dest / "artifacts").as_uri()
    settings.save(dest)
    return dest


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`mltrail -r ROOT --actor mlops.alex ARGS...` in process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["-r", str(root), "--actor", "mlops.alex", *args])
    out, err = capsys.readouterr()
    return code, out, err
